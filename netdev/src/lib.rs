//! The AF_XDP data plane: kernel redirect stub, UMEM and rings, per-queue workers, verdicts.
