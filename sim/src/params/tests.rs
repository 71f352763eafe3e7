//! Unit tests of the parameter layer.
