"""rbee-infra: the fleet in the stack config, made real over SSH."""

from rbee_infra.stack.program import main

main()
