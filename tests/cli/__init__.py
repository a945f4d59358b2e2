"""Tests of the `safehouse` command, run through its real main()."""
