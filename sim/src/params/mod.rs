//! Module parameters as `kernel/params.c` parses and sets them. (In progress: issues 3 and 4.)
