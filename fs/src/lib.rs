//! The bpffs as a FUSE filesystem: pins, directories, symlinks, map read-out.
