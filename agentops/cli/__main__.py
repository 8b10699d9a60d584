"""`python -m agentops.cli`."""

from agentops.cli import main

main()
