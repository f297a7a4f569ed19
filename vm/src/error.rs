//! Errors of the program pipeline, each able to say the kernel's errno.

/// A failure of `Program::load` or of a map/program operation.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The program was refused at load time; `errno` is what the kernel returns.
    #[error("program rejected (errno {errno}): {msg}")]
    Rejected { errno: i32, msg: String },
    #[error(transparent)]
    Map(#[from] crate::maps::MapError),
}

impl VmError {
    pub fn errno(&self) -> i32 {
        match self {
            VmError::Rejected { errno, .. } => *errno,
            VmError::Map(e) => e.errno(),
        }
    }
}

impl From<crate::program::LoadError> for VmError {
    fn from(e: crate::program::LoadError) -> Self {
        VmError::Rejected {
            errno: e.errno,
            msg: e.log,
        }
    }
}
