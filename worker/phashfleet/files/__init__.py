"""Files in and out: which paths may be read, listing a source, opening a file, writing the output."""
