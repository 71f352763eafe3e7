//! The appended signature: `module_sig_check()` (`kernel/module/signing.c`). (In progress.)
