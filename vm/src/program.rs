//! `Program::load`: the whole pipeline (decode -> check -> rewrite) for what
//! `BPF_PROG_LOAD` received, and the loaded program that the interpreter runs.

/// A loaded program (placeholder: the vm issue fills this in).
pub struct Program {}
