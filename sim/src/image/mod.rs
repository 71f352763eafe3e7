//! Byte views over a module image (ELF through `object`, `.modinfo`, `__versions`, the signature trailer) and the validated `LoadInfo` the load path decides on. (In progress: issue 3.)
