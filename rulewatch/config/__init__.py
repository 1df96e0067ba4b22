"""Configuration: the YAML files of this folder, and the source systems' fixed facts."""
