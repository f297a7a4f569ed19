//! Executable memory for compiled programs: one anonymous mapping per program,
//! written once, then made read+execute (never writable and executable at once).

use std::io;

/// A read+execute mapping holding one compiled program.
pub(crate) struct CodeMem {
    ptr: *mut u8,
    map_len: usize,
    code_len: usize,
}

// SAFETY: the mapping is immutable (PROT_READ|PROT_EXEC) once `new` returns, so sharing
// or moving it between threads cannot race; it is unmapped only on drop.
unsafe impl Send for CodeMem {}
// SAFETY: as above, no interior mutability.
unsafe impl Sync for CodeMem {}

impl CodeMem {
    /// Map `code` as executable memory.
    pub(crate) fn new(code: &[u8]) -> io::Result<CodeMem> {
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let map_len = code.len().max(1).div_ceil(page) * page;
        // SAFETY: a fresh anonymous private mapping; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = ptr as *mut u8;
        // SAFETY: `ptr` is a writable mapping of map_len >= code.len() bytes we own.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), ptr, code.len()) };
        // SAFETY: changes the protection of our own mapping only.
        let rc = unsafe {
            libc::mprotect(
                ptr as *mut libc::c_void,
                map_len,
                libc::PROT_READ | libc::PROT_EXEC,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            // SAFETY: unmapping the mapping created above, not used afterwards.
            unsafe { libc::munmap(ptr as *mut libc::c_void, map_len) };
            return Err(e);
        }
        Ok(CodeMem {
            ptr,
            map_len,
            code_len: code.len(),
        })
    }

    /// Start of the code.
    pub(crate) fn ptr(&self) -> *const u8 {
        self.ptr
    }

    /// Bytes of machine code.
    pub(crate) fn len(&self) -> usize {
        self.code_len
    }

    /// The machine code (for `bpf_prog_info.jited_prog_insns`).
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is readable, holds code_len initialised bytes and lives
        // (unchanged) as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.code_len) }
    }
}

impl Drop for CodeMem {
    fn drop(&mut self) {
        // SAFETY: our own mapping; the program owning it is being dropped, so no run
        // can be executing it (runs borrow the program).
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.map_len) };
    }
}
