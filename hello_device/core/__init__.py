"""The pure core: protocol, turn-taking and the decisions of the device, with no I/O.

Nothing under ``core/`` opens a socket, a file, a thread or a sound card, reads a clock
or sleeps: time comes in as arguments and everything outside is handed in. A test in
``tests/test_architecture.py`` enforces it.
"""
