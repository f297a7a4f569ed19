//! The daemon's socket protocol: one JSON object per line; the listener fd of a
//! new target travels with its `register` request as SCM_RIGHTS.
//!
//! Requests: `{"op":"hello"}` -> `{"ok":true,"bpffs":PATH,"pid":N}`;
//! `{"op":"register","pid":N,"trace":bool}` + fd -> `{"ok":true}` (then, with trace,
//! the daemon sends `{"trace":LINE}` lines on that connection);
//! `{"op":"status"}` -> the status object; `{"op":"stop"}` -> `{"ok":true}`.

use std::io::{IoSlice, IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Mutex;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};

/// The default daemon socket.
pub const DEFAULT_SOCKET: &str = "/run/bpftime/bpftimed.sock";

/// The socket path: explicit, else $BPFTIME_SOCKET, else the default.
pub fn socket_path(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(|| std::env::var_os("BPFTIME_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// A request to the daemon.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Hello,
    Register { pid: u32, trace: bool },
    Status,
    Stop,
}

/// Sends one JSON line with optional fds.
pub fn send(stream: &UnixStream, msg: &impl Serialize, fds: &[RawFd]) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg)?;
    line.push(b'\n');
    let iov = [IoSlice::new(&line)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    let n = sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if n < line.len() {
        (&*stream).write_all(&line[n..])?;
    }
    Ok(())
}

/// Reads JSON lines (and the fds that come with them) from a stream.
pub struct LineReader {
    buf: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Default for LineReader {
    fn default() -> Self {
        Self::new()
    }
}

impl LineReader {
    pub fn new() -> Self {
        LineReader {
            buf: Vec::new(),
            fds: Vec::new(),
        }
    }

    /// The next line and every fd received so far; None at EOF.
    pub fn next(
        &mut self,
        stream: &UnixStream,
    ) -> std::io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
        loop {
            if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=p).take(p).collect();
                return Ok(Some((line, std::mem::take(&mut self.fds))));
            }
            let mut chunk = [0u8; 4096];
            let mut cbuf = nix::cmsg_space!([RawFd; 4]);
            let (n, fds) = {
                let mut iov = [IoSliceMut::new(&mut chunk)];
                let msg = recvmsg::<()>(
                    stream.as_raw_fd(),
                    &mut iov,
                    Some(&mut cbuf),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                )?;
                let mut fds = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(v) = c {
                        // SAFETY: the kernel installed these fds for us; nothing else owns them.
                        fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                    }
                }
                (msg.bytes, fds)
            };
            self.fds.extend(fds);
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// One request/response exchange on a fresh connection.
pub fn request(socket: &std::path::Path, req: &Request) -> std::io::Result<serde_json::Value> {
    let s = UnixStream::connect(socket)?;
    send(&s, req, &[])?;
    let mut r = LineReader::new();
    match r.next(&s)? {
        Some((line, _)) => Ok(serde_json::from_slice(&line)?),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "daemon closed the connection",
        )),
    }
}

/// Where trace lines of one target go.
pub struct TraceSink {
    stream: Mutex<UnixStream>,
}

impl TraceSink {
    pub fn new(stream: UnixStream) -> Self {
        TraceSink {
            stream: Mutex::new(stream),
        }
    }
    /// Sends one line; a gone reader is ignored.
    pub fn line(&self, line: &str) {
        let s = self.stream.lock().unwrap();
        let _ = send(&s, &serde_json::json!({ "trace": line }), &[]);
    }
}
