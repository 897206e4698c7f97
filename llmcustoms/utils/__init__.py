"""Configuration, logging and input checks shared by the whole core."""
