//! A `HelperCtx` for unit tests: regions, maps, an XDP frame, a scratch area.

use std::sync::{Arc, Mutex};

use crate::maps::{map_handle, Map};
use crate::mem::Region;
use crate::program::Program;
use crate::run::{Fault, HelperCtx, HostEnv, NoHost, RedirectInfo, XdpCtx};

pub struct TestCtx {
    pub regions: Vec<Region>,
    pub maps: Vec<Arc<dyn Map>>,
    pub xdp: XdpCtx,
    pub cpu: u32,
    pub redirect: RedirectInfo,
    pub tail: Option<Arc<Program>>,
    pub guard: crossbeam_epoch::Guard,
    pub host: Box<dyn HostEnv>,
    /// Callback for `call`: (func, args) -> r0.
    pub callback: Box<dyn FnMut(u64, [u64; 5]) -> u64>,
    /// Scratch memory (8-aligned), registered as a writable region.
    pub scratch: Box<[u64]>,
    /// Frame buffer (registered as a writable region).
    pub frame: Box<[u64]>,
    pub held_lock: u64,
}

pub struct TraceHost(pub Mutex<Vec<String>>);
impl HostEnv for TraceHost {
    fn trace_printk(&self, msg: &str) {
        self.0.lock().unwrap().push(msg.to_string());
    }
    fn mtu(&self, ifindex: u32) -> Option<u32> {
        (ifindex == 1).then_some(1500)
    }
}

impl TestCtx {
    pub fn new() -> Self {
        let scratch = vec![0u64; 512].into_boxed_slice();
        let frame = vec![0u64; 4096 / 8].into_boxed_slice();
        let mut c = Self {
            regions: vec![],
            maps: vec![],
            xdp: XdpCtx::default(),
            cpu: 0,
            redirect: RedirectInfo::default(),
            tail: None,
            guard: crossbeam_epoch::pin(),
            host: Box::new(NoHost),
            callback: Box::new(|_, _| 0),
            scratch,
            frame,
            held_lock: 0,
        };
        let s = c.scratch.as_ptr() as u64;
        c.regions.push(Region::new(s, 4096, true));
        let f = c.frame.as_ptr() as u64;
        c.regions.push(Region::new(f, 4096, true));
        c
    }
    /// Set up an XDP frame with `len` bytes of packet after 256 bytes of headroom.
    pub fn with_packet(mut self, pkt: &[u8]) -> Self {
        let base = self.frame.as_ptr() as u64;
        let data = base + 256;
        self.xdp = XdpCtx {
            data,
            data_end: data + pkt.len() as u64,
            data_meta: data,
            hard_start: base,
            frame_end: base + 4096 - 320,
            ingress_ifindex: 1,
            ..Default::default()
        };
        self.write(data, pkt.len()).unwrap().copy_from_slice(pkt);
        self
    }
    pub fn scratch_addr(&self, off: usize) -> u64 {
        self.scratch.as_ptr() as u64 + off as u64
    }
    pub fn add(&mut self, m: Arc<dyn Map>) -> u64 {
        let h = map_handle(&m);
        self.maps.push(m);
        h
    }
    pub fn put(&mut self, off: usize, b: &[u8]) -> u64 {
        let a = self.scratch_addr(off);
        self.write(a, b.len()).unwrap().copy_from_slice(b);
        a
    }
    pub fn get(&self, addr: u64, len: usize) -> Vec<u8> {
        self.read(addr, len).unwrap().to_vec()
    }
}

impl HelperCtx for TestCtx {
    fn read(&self, addr: u64, len: usize) -> Result<&[u8], Fault> {
        if self
            .regions
            .iter()
            .any(|r| r.contains(addr, len as u64, false))
        {
            // SAFETY: the range lies in a registered region whose memory outlives `self`'s
            // borrow (scratch/frame boxes, map values held by `maps` or the guard).
            Ok(unsafe { std::slice::from_raw_parts(addr as *const u8, len) })
        } else {
            Err(Fault::OutOfBounds {
                kind: "read",
                addr,
                len,
                pc: 0,
            })
        }
    }
    fn write(&mut self, addr: u64, len: usize) -> Result<&mut [u8], Fault> {
        if self
            .regions
            .iter()
            .any(|r| r.contains(addr, len as u64, true))
        {
            // SAFETY: as in `read`; the region is writable.
            Ok(unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, len) })
        } else {
            Err(Fault::OutOfBounds {
                kind: "write",
                addr,
                len,
                pc: 0,
            })
        }
    }
    fn add_region(&mut self, region: Region) {
        self.regions.push(region);
    }
    fn remove_region(&mut self, start: u64) {
        self.regions.retain(|r| r.start != start);
    }
    fn map(&self, handle: u64) -> Option<&Arc<dyn Map>> {
        self.maps.iter().find(|m| map_handle(m) == handle)
    }
    fn add_map(&mut self, map: Arc<dyn Map>) -> u64 {
        self.add(map)
    }
    fn call(&mut self, func: u64, args: [u64; 5]) -> Result<u64, Fault> {
        Ok((self.callback)(func, args))
    }
    fn xdp(&mut self) -> &mut XdpCtx {
        &mut self.xdp
    }
    fn cpu(&self) -> u32 {
        self.cpu
    }
    fn held_lock(&mut self) -> &mut u64 {
        &mut self.held_lock
    }
    fn redirect(&mut self) -> &mut RedirectInfo {
        &mut self.redirect
    }
    fn tail_call(&mut self, prog: Arc<Program>) {
        self.tail = Some(prog);
    }
    fn guard(&self) -> &crossbeam_epoch::Guard {
        &self.guard
    }
    fn host(&self) -> &dyn HostEnv {
        &*self.host
    }
}
