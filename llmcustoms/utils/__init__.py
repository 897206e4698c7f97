"""Small shared helpers with no job of their own: settings (``config``), logging, input checks,
free disk space, and pausing the garbage collector around bulk allocation.
"""
