//! bpftime's test bench: the BPF program corpus, the packet builder, the kernel
//! oracle, network-namespace fixtures, and the privilege gate. Cross-crate and
//! real-client tests live in `tests/tests/`.

pub mod cgroup;
pub mod corpus;
pub mod netns;
pub mod oracle;
pub mod packets;
pub mod privilege;
pub mod sysbpf;
pub mod vmload;
