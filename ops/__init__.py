"""Day-2 operations for a deployed moltworker stack: `python -m ops --help`.

Each command reads the stack's outputs through one seam (`ops.outputs`), talks to the deployed
system with short timeouts, and fails with one sentence naming the problem and the fix. No
command prints a secret: every value read from a secret output is registered with the redactor
before it is used, and everything written to the terminal passes through it.
"""
