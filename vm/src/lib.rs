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
//! - `interp` (private): the interpreter; implements [`run::HelperCtx`].
//! - [`jit`]: a Cranelift backend compiling the rewritten program to machine
//!   code, used when it supports every instruction (`BPFTIME_JIT=0` turns it off).
//! - [`mem`]: the memory regions a run may touch, checked at run time.
//! - [`run`]: the contract with helpers (`HelperCtx`, the XDP context, `Fault`).
//!
//! Loading (`Program::load`): decode, `ld_imm64` map/function resolution, jump and
//! CFG checks, encoding checks, an abstract interpretation that tracks context,
//! stack, other pointers and scalars through moves and spills (the kernel's type
//! errors with its errnos), then the rewrite: `struct xdp_md` loads become loads of
//! [`run::XdpCtx`], r10-relative accesses proven inside the frame run unchecked,
//! everything else is checked against the run's regions. Running: `run_xdp` /
//! `test_run_xdp` (BPF_PROG_TEST_RUN semantics) / `run_raw` (bpf_conformance).
//! - [`maps`]: the map types (`Map` trait, one module per type).
//! - [`helpers`]: the helper table (one module per family).

pub mod asm;
pub mod error;
pub(crate) mod fixup;
pub mod helpers;
pub mod insn;
pub(crate) mod interp;
pub mod jit;
pub mod maps;
pub mod mem;
pub mod program;
pub mod run;
pub mod verifier;

pub use error::VmError;
pub use program::{stats, LoadError, MapResolver, ProgLoadSpec, Program, RunResult, TestRunOut};
