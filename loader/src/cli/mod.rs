//! kmod's command-line tools, each a function of its arguments and output streams.

pub mod modinfo;
