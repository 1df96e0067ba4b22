"""The YAML configuration and its loader; an error names the file and the dotted key."""
