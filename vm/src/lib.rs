//! bpftime's eBPF virtual machine: the program pipeline
//! (decode -> check -> rewrite -> execute), the maps and the helpers.
//!
//! This crate knows nothing of seccomp, FUSE or sockets: the supervisor hands it
//! what `BPF_PROG_LOAD` / `BPF_MAP_CREATE` received, already copied out of the
//! target, and the netdev crate hands it packets.
//!
//! Module map (one module per kernel concept):
//! - [`insn`]: instruction encoding, the opcode table, decoding.
//! - [`asm`]: an assembler for the bpf_conformance dialect (tests, examples).
//! - [`verifier`]: structural checks and context tracking at load time.
//! - [`program`]: `Program::load` (the whole pipeline) and the loaded program.
//! - [`interp`]: the interpreter.
//! - [`mem`]: the memory regions a run may touch, checked at run time.
//! - [`run`]: the per-run state helpers receive (`RunState`, the XDP context).
//! - [`maps`]: the map types (`Map` trait, one module per type).
//! - [`helpers`]: the helper table (one module per family).

pub mod error;
pub mod helpers;
pub mod maps;
pub mod mem;
pub mod program;
pub mod run;

pub use error::VmError;
