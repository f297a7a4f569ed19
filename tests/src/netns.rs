//! Network-namespace fixtures: two uniquely named namespaces joined by a veth pair with
//! IPv4 and IPv6 addresses, a way to run code or commands inside a namespace, and raw
//! AF_PACKET sockets to send crafted frames on one side and capture them on the other.
//! Everything is removed in `Drop`, also when the test panics.
//!
//! ```ignore
//! let pair = VethPair::new("my_test")?;
//! let rx = pair.b.packet_socket(&pair.if_b)?;
//! let tx = pair.a.packet_socket(&pair.if_a)?;
//! tx.send(&frame)?;
//! let got = rx.recv_matching(Duration::from_secs(1), |f| f == frame)?;
//! ```

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique name: `bt-<pid>-<counter>-<tag>`, tag sanitised and cut to fit `max` bytes.
pub fn unique_name(tag: &str, max: usize) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let base = format!("bt-{}-{}-", std::process::id(), n);
    let tag: String = tag
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let room = max.saturating_sub(base.len());
    format!("{base}{}", &tag[..tag.len().min(room)])
}

fn run_ip(args: &[&str]) -> io::Result<Output> {
    let ip = crate::privilege::which("ip")
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "`ip` not found"))?;
    let out = Command::new(ip).args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named uniquely after `tag`, with its loopback up.
    pub fn new(tag: &str) -> io::Result<Netns> {
        let name = unique_name(tag, 64);
        run_ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name (`ip netns exec <name> ...`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <name> <args>`; an error carries ip's stderr.
    pub fn ip(&self, args: &[&str]) -> io::Result<Output> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run_ip(&all)
    }

    /// A `Command` that runs `prog args` inside the namespace (`ip netns exec`).
    pub fn command(&self, prog: &str, args: &[&str]) -> Command {
        let ip = crate::privilege::which("ip").unwrap_or_else(|| "ip".into());
        let mut c = Command::new(ip);
        c.args(["netns", "exec", &self.name, prog]).args(args);
        c
    }

    /// Runs `f` on a fresh thread that has entered the namespace (setns), and returns its
    /// result. Sockets created by `f` stay in the namespace and may be used anywhere.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let path = format!("/run/netns/{}", self.name);
        let file = std::fs::File::open(&path)?;
        std::thread::scope(|s| {
            s.spawn(|| {
                setns_net(&file)?;
                Ok(f())
            })
            .join()
            .map_err(|_| io::Error::other("closure panicked inside the namespace"))?
        })
    }

    /// The interface index of `ifname` inside the namespace.
    pub fn ifindex(&self, ifname: &str) -> io::Result<u32> {
        let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
        self.run(move || {
            // SAFETY: name is a valid NUL-terminated string.
            let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
            if i == 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(i)
            }
        })?
    }

    /// A raw AF_PACKET socket bound to `ifname` inside the namespace.
    pub fn packet_socket(&self, ifname: &str) -> io::Result<PacketSocket> {
        let ifindex = self.ifindex(ifname)?;
        self.run(move || PacketSocket::bind(ifindex))?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run_ip(&["netns", "del", &self.name]) {
            eprintln!("netns fixture: cannot delete {}: {e}", self.name);
        }
    }
}

fn setns_net(f: &std::fs::File) -> io::Result<()> {
    // SAFETY: f is an open namespace file; setns changes only this thread's network
    // namespace (CLONE_NEWNET), which is a dedicated thread of Netns::run.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Two namespaces `a` and `b` joined by a veth pair (`if_a` in `a`, `if_b` in `b`),
/// addressed 10.77.0.1/24 / 10.77.0.2/24 and fd77::1/64 / fd77::2/64, up.
/// Dropping it deletes both namespaces (the veth goes with them).
#[derive(Debug)]
pub struct VethPair {
    pub a: Netns,
    pub b: Netns,
    pub if_a: String,
    pub if_b: String,
    pub ip_a: Ipv4Addr,
    pub ip_b: Ipv4Addr,
    pub ip6_a: Ipv6Addr,
    pub ip6_b: Ipv6Addr,
    pub mac_a: [u8; 6],
    pub mac_b: [u8; 6],
    pub ifindex_a: u32,
    pub ifindex_b: u32,
}

fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl VethPair {
    /// Creates the pair for the test `tag`. IPv6 DAD is disabled so addresses are usable at once.
    pub fn new(tag: &str) -> io::Result<VethPair> {
        Self::with_queues(tag, 1)
    }

    /// As [`VethPair::new`], both ends with `queues` RX and TX queues (`numrxqueues`).
    pub fn with_queues(tag: &str, queues: u32) -> io::Result<VethPair> {
        let a = Netns::new(&format!("{tag}-a"))?;
        let b = Netns::new(&format!("{tag}-b"))?;
        let (if_a, if_b) = ("veth-a".to_string(), "veth-b".to_string());
        let (mac_a, mac_b) = ([0x02, 0xbf, 0, 0, 0, 0x0a], [0x02, 0xbf, 0, 0, 0, 0x0b]);
        let q = queues.to_string();
        let qs = ["numrxqueues", q.as_str(), "numtxqueues", q.as_str()];
        let mut args = vec!["link", "add", &if_a, "address"];
        let (ma, mb) = (mac_str(&mac_a), mac_str(&mac_b));
        args.push(&ma);
        args.extend(qs);
        args.extend(["type", "veth", "peer", "name", &if_b, "address", &mb]);
        args.extend(qs);
        args.extend(["netns", b.name()]);
        a.ip(&args)?;
        for (ns, ifn, v4, v6) in [
            (&a, &if_a, "10.77.0.1/24", "fd77::1/64"),
            (&b, &if_b, "10.77.0.2/24", "fd77::2/64"),
        ] {
            // no DAD, no router solicitations: the link is usable at once and quiet
            let _ = ns
                .command(
                    "sysctl",
                    &["-qw", &format!("net.ipv6.conf.{ifn}.accept_dad=0")],
                )
                .output();
            ns.ip(&["addr", "add", v4, "dev", ifn])?;
            ns.ip(&["-6", "addr", "add", v6, "dev", ifn, "nodad"])?;
            ns.ip(&["link", "set", ifn, "up"])?;
        }
        let ifindex_a = a.ifindex(&if_a)?;
        let ifindex_b = b.ifindex(&if_b)?;
        Ok(VethPair {
            a,
            b,
            if_a,
            if_b,
            ip_a: Ipv4Addr::new(10, 77, 0, 1),
            ip_b: Ipv4Addr::new(10, 77, 0, 2),
            ip6_a: "fd77::1".parse().unwrap(),
            ip6_b: "fd77::2".parse().unwrap(),
            mac_a,
            mac_b,
            ifindex_a,
            ifindex_b,
        })
    }

    /// Waits until both ends report carrier (veth comes up asynchronously).
    pub fn wait_up(&self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let up = |ns: &Netns, ifn: &str| {
                ns.ip(&["-o", "link", "show", ifn])
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains("LOWER_UP"))
                    .unwrap_or(false)
            };
            if up(&self.a, &self.if_a) && up(&self.b, &self.if_b) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "veth did not come up",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A frame received on a packet socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The bytes (from the Ethernet header).
    pub data: Vec<u8>,
    /// `sll_pkttype`: PACKET_HOST 0, BROADCAST 1, MULTICAST 2, OTHERHOST 3, OUTGOING 4.
    pub pkttype: u8,
}

/// A raw AF_PACKET socket (ETH_P_ALL) bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl PacketSocket {
    /// Opens a socket bound to `ifindex` in the calling thread's network namespace.
    pub fn bind(ifindex: u32) -> io::Result<PacketSocket> {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                proto as i32,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh socket owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: sll is a valid sockaddr_ll of the size given.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { fd, ifindex })
    }

    /// The interface it is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sends one frame (Ethernet header included) out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame is a valid buffer of frame.len() bytes.
        let r = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        if r as usize != frame.len() {
            return Err(io::Error::other(format!(
                "short send: {r} of {}",
                frame.len()
            )));
        }
        Ok(())
    }

    /// Receives one frame, waiting at most `timeout`; `Ok(None)` on timeout.
    pub fn recv(&self, timeout: Duration) -> io::Result<Option<Captured>> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: pfd is one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        if r == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; 65536];
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buf and sll are valid for the sizes given; len is in/out.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                &mut sll as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                &mut len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(e);
        }
        buf.truncate(n as usize);
        Ok(Some(Captured {
            data: buf,
            pkttype: sll.sll_pkttype,
        }))
    }

    /// Receives incoming frames (not our own outgoing ones) until one satisfies `want`, or
    /// `timeout` passes (`Ok(None)`).
    pub fn recv_matching(
        &self,
        timeout: Duration,
        want: impl Fn(&[u8]) -> bool,
    ) -> io::Result<Option<Captured>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left)? {
                Some(c) if c.pkttype != libc::PACKET_OUTGOING && want(&c.data) => {
                    return Ok(Some(c))
                }
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }

    /// Counts incoming frames satisfying `want` during `window`.
    pub fn count_matching(
        &self,
        window: Duration,
        want: impl Fn(&[u8]) -> bool,
    ) -> io::Result<usize> {
        let deadline = Instant::now() + window;
        let mut n = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(n);
            }
            match self.recv(left)? {
                Some(c) if c.pkttype != libc::PACKET_OUTGOING && want(&c.data) => n += 1,
                Some(_) => {}
                None => return Ok(n),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_bounded() {
        let a = unique_name("some test/name with spaces", 30);
        let b = unique_name("some test/name with spaces", 30);
        assert_ne!(a, b);
        assert!(a.len() <= 30, "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{a}"
        );
    }
}
