//! Oracle tests (in progress).
