"""The `wm` command line: the top layer, thin commands over the library that nothing else imports."""
