//! The helper table: one [`HelperSpec`] per helper id, one module per family.
//! The verifier refuses calls to ids not in the table (EINVAL, as the kernel's
//! "invalid func unknown#N"); the interpreter calls `spec.func`.

use crate::run::HelperFn;

/// What kind of value a helper argument must be (checked at load where the
/// verifier can, and at run time through `HelperCtx` always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// Unused argument.
    None,
    /// Any scalar.
    Anything,
    /// A map handle.
    Map,
    /// Pointer to a key of the map's key size.
    MapKey,
    /// Pointer to a value of the map's value size.
    MapValue,
    /// Pointer to memory whose size is the next argument.
    Mem,
    /// Size of the previous `Mem` argument.
    Size,
    /// The program's context.
    Ctx,
    /// A BPF function (`ld_imm64 FUNC`).
    Func,
}

/// One helper.
pub struct HelperSpec {
    pub id: u32,
    pub name: &'static str,
    pub func: HelperFn,
    pub args: [ArgKind; 5],
    /// Only callable from GPL-compatible programs.
    pub gpl_only: bool,
}

/// The helper with this id, if bpftime implements it.
pub fn get(id: u32) -> Option<&'static HelperSpec> {
    let _ = id;
    None
}
