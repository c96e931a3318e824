"""rbee-infra: the fleet in the stack config, made real over SSH."""

from rbee_infra.program import main

main()
