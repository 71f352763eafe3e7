//! Errno values and their names: the simulator's type, shared by every backend.

pub use sim::errno::Errno;
