"""The Pulumi surface: the program, its resources and their providers.

In the dynamic-provider server's process, which imports this package when it unpickles a
provider, the process ends without Python's teardown (see `provider_server`)."""

from rbee_infra.stack.provider_server import exit_without_teardown

exit_without_teardown()
