//! The FUSE bpffs (`bpftime-fs`) mounted for real: pins made through the API seen through
//! the VFS (`ls`, `stat`, `cat`), directory operations, permissions for another user,
//! flock, unmount, a mount inside another mount namespace, a stale mount whose server
//! is stuck, and the deadlock contract with a slow store.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bpftime_fs::{may, BpfFs, Cred, FsError, ObjKind, ObjRef, ObjectStore, ROOT_INO};
use bpftime_tests::privilege::{require, Need};

/// A registry stand-in: counts pin references, dumps maps as text, and can make
/// `dump` wait on a lock (the supervisor's per-target lock, in the deadlock test).
#[derive(Default)]
struct FakeStore {
    refs: Mutex<HashMap<ObjRef, i64>>,
    gate: Arc<Mutex<()>>,
    dumps: AtomicU32,
}

impl FakeStore {
    fn refs(&self, o: ObjRef) -> i64 {
        self.refs.lock().unwrap().get(&o).copied().unwrap_or(0)
    }
    fn total_refs(&self) -> i64 {
        self.refs.lock().unwrap().values().sum()
    }
}

impl ObjectStore for FakeStore {
    fn dump(&self, obj: ObjRef) -> Result<Vec<u8>, i32> {
        self.dumps.fetch_add(1, Ordering::SeqCst);
        let _held = self.gate.lock().unwrap();
        if obj.id == 1 {
            return Err(libc::EIO); // a map without BTF, as the kernel refuses it
        }
        Ok(format!(
            "# map {}\n0: {}\n1: {}\n",
            obj.id,
            obj.id * 10,
            obj.id * 10 + 1
        )
        .into_bytes())
    }
    fn pin_added(&self, obj: ObjRef) {
        *self.refs.lock().unwrap().entry(obj).or_default() += 1;
    }
    fn pin_removed(&self, obj: ObjRef) {
        *self.refs.lock().unwrap().entry(obj).or_default() -= 1;
    }
}

fn map(id: u32) -> ObjRef {
    ObjRef {
        kind: ObjKind::Map,
        id,
    }
}
fn prog(id: u32) -> ObjRef {
    ObjRef {
        kind: ObjKind::Prog,
        id,
    }
}
fn root_cred() -> Cred {
    Cred {
        uid: 0,
        gid: 0,
        groups: vec![],
    }
}

/// A uniquely named directory under /tmp, cleaned (stale mounts included) on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = PathBuf::from(format!(
            "/tmp/bpftime-fs-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = BpfFs::cleanup_stale(&self.0);
        let _ = fs::remove_dir(&self.0);
    }
}

fn errno_of<T>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// Runs `cmd` as uid/gid 65534 (nobody); returns (success, stdout, stderr).
fn as_nobody(args: &[&str]) -> (bool, String, String) {
    let setpriv = bpftime_tests::privilege::which("setpriv").expect("setpriv (util-linux)");
    let out = Command::new(setpriv)
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `f` on a thread with a timeout; panics if it does not finish (a hang).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what}: hung for {secs}s"))
}

#[test]
fn mount_pin_and_use_through_the_vfs() {
    if !require(&[Need::Root, Need::Fuse]) {
        return;
    }
    let dir = TempDir::new("vfs");
    let store = Arc::new(FakeStore::default());
    let fs_ = BpfFs::new(store.clone());
    let mnt = fs_.mount(dir.path()).expect("mount");
    let root = dir.path();

    // The root: 1777, ino 1, our st_dev.
    let md = fs::metadata(root).unwrap();
    assert_eq!(md.mode(), 0o41777, "root mode");
    assert_eq!((md.ino(), md.uid(), md.gid()), (ROOT_INO, 0, 0));
    assert_eq!(Some(md.dev()), fs_.dev());
    assert_eq!(mnt.dev(), md.dev());
    // An instance is mounted once.
    assert_eq!(fs_.mount(root).unwrap_err(), FsError::Busy);

    // Pins through the API, visible through the VFS with our inode numbers.
    let m = fs_
        .pin(ROOT_INO, OsStr::new("m"), map(7), &root_cred(), 0o022)
        .unwrap();
    let user = Cred {
        uid: 1000,
        gid: 1000,
        groups: vec![],
    };
    let p = fs_
        .pin(ROOT_INO, OsStr::new("p"), prog(9), &user, 0o077)
        .unwrap();
    let raw = fs_
        .pin(ROOT_INO, OsStr::new("raw"), map(1), &root_cred(), 0)
        .unwrap();
    assert_eq!(store.refs(map(7)), 1);
    let st = fs::metadata(root.join("m")).unwrap();
    assert_eq!(
        (st.ino(), st.mode(), st.uid(), st.size(), st.nlink()),
        (m, 0o100600, 0, 0, 1)
    );
    let st = fs::metadata(root.join("p")).unwrap();
    assert_eq!(
        (st.ino(), st.mode(), st.uid(), st.gid()),
        (p, 0o100600, 1000, 1000)
    );
    assert_eq!(fs_.lookup(st.ino()), Some(prog(9)));
    assert_eq!(fs_.lookup(ROOT_INO), None);

    // Pin errors as the kernel's.
    let e = |r: Result<u64, FsError>| r.unwrap_err().errno();
    assert_eq!(
        e(fs_.pin(ROOT_INO, OsStr::new("m"), map(8), &root_cred(), 0)),
        libc::EEXIST
    );
    assert_eq!(
        e(fs_.pin(ROOT_INO, OsStr::new("a.b"), map(8), &root_cred(), 0)),
        libc::EPERM
    );
    assert_eq!(
        e(fs_.pin(m, OsStr::new("x"), map(8), &root_cred(), 0)),
        libc::ENOTDIR
    );
    assert_eq!(
        e(fs_.pin(
            ROOT_INO,
            OsStr::new("b"),
            ObjRef {
                kind: ObjKind::Btf,
                id: 3
            },
            &root_cred(),
            0
        )),
        libc::EINVAL
    );
    assert_eq!(store.refs(map(8)), 0, "failed pins hold no reference");
    // OBJ_GET's access check: 0600 pin of uid 1000.
    assert_eq!(fs_.get(p, &user, may::READ | may::WRITE).unwrap(), prog(9));
    assert_eq!(
        fs_.get(
            p,
            &Cred {
                uid: 1001,
                gid: 1001,
                groups: vec![]
            },
            may::READ
        )
        .unwrap_err()
        .errno(),
        libc::EACCES
    );
    assert_eq!(
        fs_.get(ROOT_INO, &root_cred(), may::READ)
            .unwrap_err()
            .errno(),
        libc::EACCES
    );

    // cat: the store's dump for a map, EIO for a program and for a map it cannot show.
    let text = fs::read_to_string(root.join("m")).unwrap();
    assert_eq!(text, "# map 7\n0: 70\n1: 71\n");
    let out = Command::new("cat").arg(root.join("m")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);
    assert_eq!(errno_of(fs::read(root.join("p"))), libc::EIO);
    assert_eq!(errno_of(fs::read(root.join("raw"))), libc::EIO);
    let _ = raw;
    // Writing a map pin: open works, write is EINVAL (no write op).
    let mut w = fs::OpenOptions::new()
        .write(true)
        .open(root.join("m"))
        .unwrap();
    assert_eq!(errno_of(std::io::Write::write(&mut w, b"x")), libc::EINVAL);
    drop(w);

    // Directories, symlinks, renames, hard links, removal through the VFS.
    fs::DirBuilder::new()
        .mode(0o700)
        .create(root.join("xdp"))
        .unwrap();
    let st = fs::metadata(root.join("xdp")).unwrap();
    assert_eq!((st.mode(), st.nlink()), (0o40700, 2));
    assert_eq!(fs::metadata(root).unwrap().nlink(), 3);
    std::os::unix::fs::symlink("xdp", root.join("tc")).unwrap();
    assert_eq!(fs::read_link(root.join("tc")).unwrap(), Path::new("xdp"));
    assert_eq!(
        fs::symlink_metadata(root.join("tc")).unwrap().mode(),
        0o120777
    );
    fs::rename(root.join("m"), root.join("xdp/globals")).unwrap();
    assert_eq!(
        fs::read_to_string(root.join("tc/globals")).unwrap(),
        text,
        "through the symlink"
    );
    fs::hard_link(root.join("xdp/globals"), root.join("g2")).unwrap();
    assert_eq!(fs::metadata(root.join("g2")).unwrap().nlink(), 2);
    let ls = Command::new("ls").arg("-ln").arg(root).output().unwrap();
    let ls = String::from_utf8_lossy(&ls.stdout);
    let rows: Vec<Vec<&str>> = ls
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let row = |name: &str| -> String {
        let r = rows
            .iter()
            .find(|r| r[8] == name)
            .unwrap_or_else(|| panic!("ls -ln lacks {name}:\n{ls}"));
        format!(
            "{} {} {} {} {}{}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[9..].join(" ").replace("->", " ->")
        )
    };
    assert_eq!(row("g2"), "-rw------- 2 0 0 0");
    assert_eq!(row("p"), "-rw------- 1 1000 1000 0");
    assert_eq!(row("tc"), "lrwxrwxrwx 1 0 0 0 -> xdp");
    assert_eq!(row("xdp"), "drwx------ 2 0 0 0");
    assert_eq!(
        fs_.pins(),
        vec![
            (PathBuf::from("g2"), map(7)),
            (PathBuf::from("p"), prog(9)),
            (PathBuf::from("raw"), map(1)),
            (PathBuf::from("xdp/globals"), map(7))
        ]
    );
    // Rename over an existing pin releases it.
    fs::rename(root.join("raw"), root.join("p")).unwrap();
    assert_eq!((store.refs(prog(9)), store.refs(map(1))), (0, 1));
    assert_eq!(errno_of(fs::remove_dir(root.join("xdp"))), libc::ENOTEMPTY);
    fs::remove_file(root.join("xdp/globals")).unwrap();
    assert_eq!(store.refs(map(7)), 1, "still pinned as g2");
    fs::remove_file(root.join("g2")).unwrap();
    assert_eq!(store.refs(map(7)), 0);
    fs::remove_dir(root.join("xdp")).unwrap();
    fs::remove_file(root.join("tc")).unwrap();
    // Regular files cannot be created, as on bpffs.
    assert_eq!(errno_of(fs::File::create(root.join("f"))), libc::EACCES);

    // flock on a directory (libxdp locks its dispatcher directory).
    fs::create_dir(root.join("dispatch")).unwrap();
    let d1 = fs::File::open(root.join("dispatch")).unwrap();
    let d2 = fs::File::open(root.join("dispatch")).unwrap();
    // SAFETY: flock on fds owned by d1/d2, which outlive the calls.
    let r1 = unsafe { libc::flock(d1.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(r1, 0, "flock: {}", std::io::Error::last_os_error());
    // SAFETY: as above.
    let r2 = unsafe { libc::flock(d2.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(
        (r2, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::EWOULDBLOCK))
    );
    drop(d1);
    // SAFETY: as above.
    let r3 = unsafe { libc::flock(d2.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(r3, 0, "lock free again after the holder closed");
    drop(d2);

    // Another user: denied on a 0600 pin, may list the 1777 root, may not remove root's
    // pin there (sticky), may read once the mode allows.
    let q = fs_
        .pin(ROOT_INO, OsStr::new("q"), map(5), &root_cred(), 0o022)
        .unwrap();
    let qp = root.join("q");
    let qs = qp.to_str().unwrap();
    let (ok, _, err) = as_nobody(&["cat", qs]);
    assert!(
        !ok && err.contains("Permission denied"),
        "nobody cat 0600: {err}"
    );
    let (ok, out, _) = as_nobody(&["ls", root.to_str().unwrap()]);
    assert!(ok && out.contains('q'), "nobody ls: {out}");
    let (ok, _, err) = as_nobody(&["rm", "-f", qs]);
    assert!(
        !ok && err.contains("Operation not permitted"),
        "nobody rm in sticky root: {err}"
    );
    let (ok, _, err) = as_nobody(&["mkdir", &format!("{}/nb", root.display())]);
    assert!(ok, "nobody mkdir in 1777 root: {err}");
    assert_eq!(fs::metadata(root.join("nb")).unwrap().uid(), 65534);
    fs::set_permissions(&qp, fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, out, err) = as_nobody(&["cat", qs]);
    assert!(
        ok && out == "# map 5\n0: 50\n1: 51\n",
        "nobody cat 0644: {out} {err}"
    );
    std::os::unix::fs::chown(&qp, Some(65534), Some(65534)).unwrap();
    assert_eq!(fs::metadata(&qp).unwrap().uid(), 65534);
    assert_eq!(fs_.lookup(q), Some(map(5)));

    // statfs through FUSE (the supervisor substitutes the magic for its targets).
    // SAFETY: an all-zero statfs is a valid out-buffer.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    let cpath = std::ffi::CString::new(root.to_str().unwrap()).unwrap();
    // SAFETY: valid C string and out-buffer.
    assert_eq!(unsafe { libc::statfs(cpath.as_ptr(), &mut sfs) }, 0);
    assert_eq!((sfs.f_bsize, sfs.f_namelen), (4096, 255));

    // Unmount: the mountpoint is a plain directory again; every pin is released.
    mnt.unmount().unwrap();
    let md = fs::metadata(root).unwrap();
    assert_ne!(Some(md.dev()), fs_.dev());
    assert!(fs_.is_dead() && fs_.dev().is_none());
    assert_eq!(
        store.total_refs(),
        0,
        "pins released at unmount: {:?}",
        store.refs.lock().unwrap()
    );
    assert!(fs_.pins().is_empty());
    assert_eq!(BpfFs::cleanup_stale(root).unwrap(), 0);
}

#[test]
fn slow_store_does_not_block_other_requests() {
    if !require(&[Need::Root, Need::Fuse]) {
        return;
    }
    let dir = TempDir::new("slow");
    let store = Arc::new(FakeStore::default());
    let fs_ = BpfFs::new(store.clone());
    let _mnt = fs_.mount(dir.path()).unwrap();
    fs_.pin(ROOT_INO, OsStr::new("m"), map(4), &root_cred(), 0)
        .unwrap();
    // The "supervisor" holds its lock (handling a notification) ...
    let gate = store.gate.clone();
    let held = gate.lock().unwrap();
    // ... while a target reads the pinned map: its FUSE request waits in dump().
    let p = dir.path().join("m");
    let reader = std::thread::spawn(move || fs::read_to_string(p));
    let t0 = Instant::now();
    while store.dumps.load(Ordering::SeqCst) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the read never reached the store"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The supervisor's own path walks and the target's other requests still get answers.
    let root = dir.path().to_owned();
    let (ino, names) = within(5, "stat/readdir/mkdir while the store is busy", move || {
        let ino = fs::metadata(root.join("m")).unwrap().ino();
        fs::create_dir(root.join("d")).unwrap();
        let mut names: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "maps.debug" && n != "progs.debug")
            .collect();
        names.sort();
        (ino, names)
    });
    assert_eq!(fs_.lookup(ino), Some(map(4)));
    assert_eq!(names, vec!["d", "m"]);
    drop(held);
    assert_eq!(reader.join().unwrap().unwrap(), "# map 4\n0: 40\n1: 41\n");
}

/// Runs `f` on a thread that has its own private mount namespace (the host's mount
/// table is never touched); the namespace dies with the thread.
fn in_private_mntns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unshare affects only this thread (CLONE_FS unshares its fs_struct).
            let r = unsafe { libc::unshare(libc::CLONE_FS | libc::CLONE_NEWNS) };
            assert_eq!(r, 0, "unshare: {}", std::io::Error::last_os_error());
            // SAFETY: static C strings; NULL source/type/data are allowed for MS_PRIVATE.
            let r = unsafe {
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                )
            };
            assert_eq!(r, 0, "make / private: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    })
}

fn mount_kernel_bpffs(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: valid C strings; no data.
    let r = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            c.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "mount -t bpf: {}", std::io::Error::last_os_error());
}

fn bpf(cmd: i32, attr: &mut [u8]) -> i64 {
    bpftime_tests::sysbpf::raw(cmd as u32, attr)
}

/// Kernel side of the comparison: an ARRAY map (no BTF) pinned at `path`.
fn kernel_pin_map(path: &Path) {
    let mut attr = [0u8; 72];
    attr[0..4].copy_from_slice(&2u32.to_ne_bytes());
    attr[4..8].copy_from_slice(&4u32.to_ne_bytes());
    attr[8..12].copy_from_slice(&4u32.to_ne_bytes());
    attr[12..16].copy_from_slice(&2u32.to_ne_bytes());
    let fd = bpf(0, &mut attr);
    assert!(fd >= 0, "map create: {}", std::io::Error::last_os_error());
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut attr = [0u8; 24];
    attr[0..8].copy_from_slice(&(c.as_ptr() as u64).to_ne_bytes());
    attr[8..12].copy_from_slice(&(fd as u32).to_ne_bytes());
    let r = bpf(6, &mut attr);
    assert_eq!(r, 0, "obj pin: {}", std::io::Error::last_os_error());
    // SAFETY: fd came from bpf() and is owned here; the pin keeps the map.
    unsafe { libc::close(fd as i32) };
}

fn renameat2(base: &Path, from: &str, to: &str, flags: u32) -> std::io::Result<()> {
    let f = std::ffi::CString::new(base.join(from).to_str().unwrap()).unwrap();
    let t = std::ffi::CString::new(base.join(to).to_str().unwrap()).unwrap();
    // SAFETY: valid C strings.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn mknod(path: &Path, mode: u32) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: valid C string.
    let r = unsafe { libc::mknod(c.as_ptr(), mode, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The same VFS operations, in order, on a bpffs whose root is `b` and which has a map
/// (without BTF) pinned at `b/m`. Returns (operation, errno or 0 / observed value).
fn errno_table(b: &Path) -> Vec<(&'static str, String)> {
    let mut t: Vec<(&'static str, String)> = Vec::new();
    let mut e = |name: &'static str, r: i32| t.push((name, r.to_string()));
    let mode =
        |p: &str| fs::symlink_metadata(b.join(p)).map(|m| format!("{:o}/{}", m.mode(), m.nlink()));
    // bpf_preload's iterator files (open gives ENOENT on the reference kernel).
    t_push(&mut e, "stat maps.debug", mode("maps.debug"));
    t_push(&mut e, "stat progs.debug", mode("progs.debug"));
    e(
        "open maps.debug",
        errno_of(fs::File::open(b.join("maps.debug"))),
    );
    e(
        "mkdir maps.debug",
        errno_of(fs::create_dir(b.join("maps.debug"))),
    );
    e(
        "rename progs.debug -> pd",
        errno_of(fs::rename(b.join("progs.debug"), b.join("pd"))),
    );
    e(
        "rename pd -> progs.debug",
        errno_of(fs::rename(b.join("pd"), b.join("progs.debug"))),
    );
    e(
        "unlink maps.debug",
        errno_of(fs::remove_file(b.join("maps.debug"))),
    );
    e(
        "stat maps.debug after",
        errno_of(fs::metadata(b.join("maps.debug"))),
    );
    e(
        "mkdir a",
        errno_of(fs::DirBuilder::new().mode(0o755).create(b.join("a"))),
    );
    e("mkdir a again", errno_of(fs::create_dir(b.join("a"))));
    e(
        "mkdir missing/x",
        errno_of(fs::create_dir(b.join("missing/x"))),
    );
    e("mkdir x.y", errno_of(fs::create_dir(b.join("x.y"))));
    e("mkdir a/x.y", errno_of(fs::create_dir(b.join("a/x.y"))));
    e("mkdir m/x", errno_of(fs::create_dir(b.join("m/x"))));
    e("mkdir a/b", errno_of(fs::create_dir(b.join("a/b"))));
    e("rmdir a (non-empty)", errno_of(fs::remove_dir(b.join("a"))));
    e("unlink a (dir)", errno_of(fs::remove_file(b.join("a"))));
    e("rmdir missing", errno_of(fs::remove_dir(b.join("nothere"))));
    e(
        "unlink missing",
        errno_of(fs::remove_file(b.join("nothere"))),
    );
    e("rmdir m (pin)", errno_of(fs::remove_dir(b.join("m"))));
    e("stat z.z", errno_of(fs::metadata(b.join("z.z"))));
    e("creat f", errno_of(fs::File::create(b.join("f"))));
    e(
        "mknod reg",
        errno_of(mknod(&b.join("n"), libc::S_IFREG | 0o600)),
    );
    e(
        "mknod fifo",
        errno_of(mknod(&b.join("n"), libc::S_IFIFO | 0o600)),
    );
    e(
        "symlink s->a",
        errno_of(std::os::unix::fs::symlink("a", b.join("s"))),
    );
    e(
        "symlink s again",
        errno_of(std::os::unix::fs::symlink("a", b.join("s"))),
    );
    e(
        "symlink s.x",
        errno_of(std::os::unix::fs::symlink("a", b.join("s.x"))),
    );
    t_push(
        &mut e,
        "readlink s",
        fs::read_link(b.join("s")).map(|p| p.display().to_string()),
    );
    t_push(&mut e, "stat s", mode("s"));
    t_push(&mut e, "stat m", mode("m"));
    t_push(&mut e, "stat a", mode("a"));
    e(
        "open m rdonly (no BTF)",
        errno_of(fs::File::open(b.join("m"))),
    );
    e(
        "open m wronly",
        errno_of(fs::OpenOptions::new().write(true).open(b.join("m"))),
    );
    e(
        "link a al (dir)",
        errno_of(fs::hard_link(b.join("a"), b.join("al"))),
    );
    e(
        "link m m2",
        errno_of(fs::hard_link(b.join("m"), b.join("m2"))),
    );
    t_push(&mut e, "stat m2", mode("m2"));
    e(
        "link m m2 again",
        errno_of(fs::hard_link(b.join("m"), b.join("m2"))),
    );
    e(
        "rename m2 over m (same inode)",
        errno_of(fs::rename(b.join("m2"), b.join("m"))),
    );
    t_push(&mut e, "stat m2 after", mode("m2"));
    e(
        "rename a -> a/b/c",
        errno_of(fs::rename(b.join("a"), b.join("a/b/c"))),
    );
    e(
        "rename s over a (dir)",
        errno_of(fs::rename(b.join("s"), b.join("a"))),
    );
    e(
        "rename a over s",
        errno_of(fs::rename(b.join("a"), b.join("s"))),
    );
    e("mkdir e", errno_of(fs::create_dir(b.join("e"))));
    e(
        "rename e over a (non-empty)",
        errno_of(fs::rename(b.join("e"), b.join("a"))),
    );
    e("mkdir g", errno_of(fs::create_dir(b.join("g"))));
    e(
        "rename g over e (empty)",
        errno_of(fs::rename(b.join("g"), b.join("e"))),
    );
    e(
        "rename missing",
        errno_of(fs::rename(b.join("nothere"), b.join("y"))),
    );
    e(
        "rename m -> m.x",
        errno_of(fs::rename(b.join("m"), b.join("m.x"))),
    );
    e(
        "noreplace s -> e",
        errno_of(renameat2(b, "s", "e", libc::RENAME_NOREPLACE)),
    );
    e(
        "exchange s <-> e",
        errno_of(renameat2(b, "s", "e", libc::RENAME_EXCHANGE)),
    );
    t_push(&mut e, "stat e after exchange", mode("e"));
    e(
        "whiteout",
        errno_of(renameat2(b, "s", "e", libc::RENAME_WHITEOUT)),
    );
    e(
        "rename m2 over m3 (new)",
        errno_of(fs::rename(b.join("m2"), b.join("m3"))),
    );
    e(
        "rename m3 over m (other name)",
        errno_of(fs::rename(b.join("m3"), b.join("m"))),
    );
    t_push(&mut e, "stat m after", mode("m"));
    e(
        "rename m into a/b",
        errno_of(fs::rename(b.join("m"), b.join("a/b/m"))),
    );
    e("unlink a/b/m", errno_of(fs::remove_file(b.join("a/b/m"))));
    e(
        "unlink a/b/m again",
        errno_of(fs::remove_file(b.join("a/b/m"))),
    );
    e(
        "chmod a 700",
        errno_of(fs::set_permissions(
            b.join("a"),
            fs::Permissions::from_mode(0o700),
        )),
    );
    t_push(&mut e, "stat a after chmod", mode("a"));
    let when = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    e(
        "set mtime a",
        errno_of(fs::File::open(b.join("a")).and_then(|f| f.set_modified(when))),
    );
    t_push(
        &mut e,
        "mtime a",
        fs::metadata(b.join("a")).map(|m| m.mtime()),
    );
    let mut names: Vec<String> = fs::read_dir(b)
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    t.push(("listing", names.join(",")));
    t
}

fn t_push<T: ToString>(
    e: &mut impl FnMut(&'static str, i32),
    name: &'static str,
    r: std::io::Result<T>,
) {
    // Values are compared through a stable hash-free encoding: the errno or the value.
    match r {
        Ok(v) => {
            let s = v.to_string();
            VALUES.with(|m| m.borrow_mut().push((name, s)));
            e(name, 0);
        }
        Err(err) => e(name, err.raw_os_error().unwrap_or(-1)),
    }
}

thread_local! {
    static VALUES: std::cell::RefCell<Vec<(&'static str, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn take_values() -> Vec<(&'static str, String)> {
    VALUES.with(|m| std::mem::take(&mut *m.borrow_mut()))
}

#[test]
fn errno_table_matches_kernel_bpffs() {
    if !require(&[Need::Root, Need::Fuse, Need::Bpf]) {
        return;
    }
    // SAFETY: umask has no preconditions; both sides run with the same one.
    let old = unsafe { libc::umask(0o022) };
    let kdir = TempDir::new("kernel");
    let kpath = kdir.path().to_owned();
    let (kernel, kvals) = in_private_mntns(move || {
        mount_kernel_bpffs(&kpath);
        kernel_pin_map(&kpath.join("m"));
        let t = errno_table(&kpath);
        (t, take_values())
    });

    let dir = TempDir::new("ours");
    let store = Arc::new(FakeStore::default());
    let fs_ = BpfFs::new(store.clone());
    let mnt = fs_.mount(dir.path()).unwrap();
    fs_.pin(ROOT_INO, OsStr::new("m"), map(1), &root_cred(), 0o022)
        .unwrap();
    let path = dir.path().to_owned();
    let (ours, ovals) = within(60, "errno table on our bpffs", move || {
        (errno_table(&path), take_values())
    });
    drop(mnt);
    // SAFETY: restores the previous umask.
    unsafe { libc::umask(old) };

    let mut diffs = Vec::new();
    for (k, o) in kernel.iter().zip(&ours) {
        if k != o {
            diffs.push(format!("{}: kernel {} ours {}", k.0, k.1, o.1));
        }
    }
    for (k, o) in kvals.iter().zip(&ovals) {
        if k != o {
            diffs.push(format!("{}: kernel {} ours {}", k.0, k.1, o.1));
        }
    }
    assert_eq!(kernel.len(), ours.len());
    assert_eq!(kvals.len(), ovals.len());
    println!(
        "{} operations compared, {} values",
        kernel.len(),
        kvals.len()
    );
    for (name, v) in kernel.iter().chain(&kvals) {
        println!("  {name:32} {v}");
    }
    assert!(
        diffs.is_empty(),
        "differences from the kernel's bpffs:\n{}",
        diffs.join("\n")
    );
    assert_eq!(store.total_refs(), 0, "every pin released at unmount");
}

#[test]
fn mount_inside_another_mount_namespace() {
    if !require(&[Need::Root, Need::Fuse]) {
        return;
    }
    let dir = TempDir::new("mntns");
    let store = Arc::new(FakeStore::default());
    let fs_ = BpfFs::new(store.clone());
    // A "target" thread in its own private mount namespace, parked until told to stop.
    let (tid_tx, tid_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<PathBuf>();
    let (res_tx, res_rx) = mpsc::channel();
    let target = std::thread::spawn(move || {
        // SAFETY: unshare only affects this thread (CLONE_FS unshares its fs_struct).
        let r = unsafe { libc::unshare(libc::CLONE_FS | libc::CLONE_NEWNS) };
        assert_eq!(r, 0);
        // SAFETY: as in in_private_mntns.
        let r = unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        };
        assert_eq!(r, 0);
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        while let Ok(p) = go_rx.recv() {
            let r = fs::metadata(&p).map(|m| (m.dev(), m.ino(), m.mode()));
            res_tx.send(r.map_err(|e| e.raw_os_error())).unwrap();
        }
    });
    let tid = tid_rx.recv().unwrap();
    let ns = PathBuf::from(format!("/proc/self/task/{tid}/ns/mnt"));
    let mnt = fs_
        .mount_in_mntns(&ns, dir.path())
        .expect("mount in the target's namespace");
    fs_.pin(ROOT_INO, OsStr::new("p"), map(3), &root_cred(), 0)
        .unwrap();
    // The target sees it ...
    go_tx.send(dir.path().join("p")).unwrap();
    let (dev, _ino, mode) = res_rx.recv().unwrap().expect("target stat");
    assert_eq!((Some(dev), mode), (fs_.dev(), 0o100600));
    // ... the host does not.
    assert_eq!(errno_of(fs::metadata(dir.path().join("p"))), libc::ENOENT);
    mnt.unmount().unwrap();
    go_tx.send(dir.path().join("p")).unwrap();
    assert_eq!(
        res_rx.recv().unwrap().unwrap_err(),
        Some(libc::ENOENT),
        "unmounted in the target's namespace"
    );
    drop(go_tx);
    target.join().unwrap();
    assert_eq!(store.total_refs(), 0);

    // A second instance whose namespace dies with its only thread (a target of
    // `ip netns exec` exiting): the kernel drops the superblock, the instance stops
    // serving and its pins are released, without any unmount from us.
    let fs2 = BpfFs::new(store.clone());
    let (tid_tx, tid_rx) = mpsc::channel();
    let (quit_tx, quit_rx) = mpsc::channel::<()>();
    let target = std::thread::spawn(move || {
        // SAFETY: as above.
        let r = unsafe { libc::unshare(libc::CLONE_FS | libc::CLONE_NEWNS) };
        assert_eq!(r, 0);
        // SAFETY: as above.
        let r = unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        };
        assert_eq!(r, 0);
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let _ = quit_rx.recv();
    });
    let tid = tid_rx.recv().unwrap();
    let mnt2 = fs2
        .mount_in_mntns(
            Path::new(&format!("/proc/self/task/{tid}/ns/mnt")),
            dir.path(),
        )
        .unwrap();
    fs2.pin(ROOT_INO, OsStr::new("x"), map(11), &root_cred(), 0)
        .unwrap();
    assert_eq!(store.refs(map(11)), 1);
    assert!(mnt2.is_serving());
    quit_tx.send(()).unwrap();
    target.join().unwrap();
    let t0 = Instant::now();
    while mnt2.is_serving() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "instance still served after its namespace died"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(store.refs(map(11)), 0, "pins released with the superblock");
    assert!(fs2.pins().is_empty());
    within(10, "drop of a mount whose namespace is gone", move || {
        drop(mnt2)
    });
}

#[test]
fn cleanup_stale_unblocks_a_dead_server() {
    if !require(&[Need::Root, Need::Fuse]) {
        return;
    }
    // A FUSE mount whose server holds /dev/fuse but never answers (its serving threads
    // died, or the daemon is stuck): every access blocks.
    let dir = TempDir::new("stale");
    let dev = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .unwrap();
    let opts = format!(
        "fd={},rootmode=40755,user_id=0,group_id=0,allow_other",
        dev.as_raw_fd()
    );
    let c_opts = std::ffi::CString::new(opts).unwrap();
    let c_dir = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
    // SAFETY: valid C strings.
    let r = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            c_dir.as_ptr(),
            c"fuse.bpftime".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c_opts.as_ptr().cast(),
        )
    };
    assert_eq!(r, 0, "mount: {}", std::io::Error::last_os_error());
    let p = dir.path().to_owned();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(fs::metadata(&p).map_err(|e| e.raw_os_error()));
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "stat should block on a dead server"
    );
    // Daemon start: the leftover is removed and the blocked caller released.
    let removed = within(10, "cleanup_stale", {
        let p = dir.path().to_owned();
        move || BpfFs::cleanup_stale(&p)
    })
    .unwrap();
    assert_eq!(removed, 1);
    let r = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the blocked stat returns");
    assert_eq!(r.unwrap_err(), Some(libc::ENOTCONN));
    let md = within(5, "ls after cleanup", {
        let p = dir.path().to_owned();
        move || fs::metadata(p).unwrap()
    });
    assert!(md.is_dir() && md.ino() != ROOT_INO);
    let mut buf = [0u8; 16];
    // The server side sees the abort.
    assert!((&dev).read(&mut buf).is_err());
    drop(dev);

    // A daemon killed with SIGKILL: the kernel closes its /dev/fuse fd, the mount stays
    // and answers ENOTCONN at once; the next daemon start removes it.
    let dev = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .unwrap();
    let opts = format!(
        "fd={},rootmode=40755,user_id=0,group_id=0,allow_other",
        dev.as_raw_fd()
    );
    let c_opts = std::ffi::CString::new(opts).unwrap();
    // SAFETY: valid C strings.
    let r = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            c_dir.as_ptr(),
            c"fuse.bpftime".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c_opts.as_ptr().cast(),
        )
    };
    assert_eq!(r, 0, "mount: {}", std::io::Error::last_os_error());
    drop(dev);
    let p = dir.path().to_owned();
    let r = within(5, "stat of a mount whose server died", move || {
        fs::metadata(p).map_err(|e| e.raw_os_error())
    });
    assert_eq!(r.unwrap_err(), Some(libc::ENOTCONN));
    assert_eq!(BpfFs::cleanup_stale(dir.path()).unwrap(), 1);
    assert_ne!(fs::metadata(dir.path()).unwrap().ino(), ROOT_INO);
    assert_eq!(BpfFs::cleanup_stale(dir.path()).unwrap(), 0, "nothing left");
}

#[test]
fn concurrent_vfs_and_api_keep_pin_references_exact() {
    if !require(&[Need::Root, Need::Fuse]) {
        return;
    }
    let dir = TempDir::new("stress");
    let store = Arc::new(FakeStore::default());
    let fs_ = BpfFs::new(store.clone());
    let mnt = fs_.mount(dir.path()).unwrap();
    let names = ["a", "b", "c", "d", "e"];
    let deadline = Instant::now() + Duration::from_millis(800);
    let (pinned, moved) = (AtomicU32::new(0), AtomicU32::new(0));
    std::thread::scope(|s| {
        // API pinners (the supervisor's OBJ_PIN).
        for t in 0..2u32 {
            let fs_ = fs_.clone();
            let pinned = &pinned;
            s.spawn(move || {
                let mut i = 0u32;
                while Instant::now() < deadline {
                    let name = names[(i as usize + t as usize) % names.len()];
                    let parent = if i.is_multiple_of(2) {
                        Ok(ROOT_INO)
                    } else {
                        fs_.resolve(Path::new("sub"))
                    };
                    if let Ok(parent) = parent {
                        if fs_
                            .pin(parent, OsStr::new(name), map(100 + t), &root_cred(), 0)
                            .is_ok()
                        {
                            pinned.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    i = i.wrapping_add(1);
                }
            });
        }
        // VFS users: rename, link, unlink, mkdir/rmdir, stat, cat.
        for t in 0..3usize {
            let root = dir.path().to_owned();
            let moved = &moved;
            s.spawn(move || {
                let mut i = t;
                while Instant::now() < deadline {
                    let a = root.join(names[i % names.len()]);
                    let b = root.join("sub").join(names[(i / 2) % names.len()]);
                    let ok = match i % 7 {
                        0 => fs::rename(&a, &b).is_ok(),
                        1 => fs::hard_link(&a, &b).is_ok(),
                        2 => fs::remove_file(&a).is_ok(),
                        3 => fs::create_dir(root.join("sub")).is_ok(),
                        4 => fs::remove_dir(root.join("sub")).is_ok(),
                        5 => fs::read(&b).is_ok(),
                        _ => fs::rename(&b, &a).is_ok(),
                    };
                    if ok && i % 7 != 3 && i % 7 != 4 {
                        moved.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            });
        }
    });
    let (pinned, moved) = (pinned.into_inner(), moved.into_inner());
    println!("{pinned} API pins, {moved} VFS operations on pins succeeded");
    assert!(
        pinned > 10 && moved > 10,
        "the stress did not exercise much: {pinned} {moved}"
    );
    // Every live pin inode holds exactly one reference.
    let mut inodes: HashMap<u64, ObjRef> = HashMap::new();
    for (p, o) in fs_.pins() {
        inodes.insert(fs::metadata(dir.path().join(&p)).unwrap().ino(), o);
    }
    let mut expect: HashMap<ObjRef, i64> = HashMap::new();
    for o in inodes.values() {
        *expect.entry(*o).or_default() += 1;
    }
    for o in [map(100), map(101)] {
        assert_eq!(store.refs(o), expect.get(&o).copied().unwrap_or(0), "{o:?}");
    }
    mnt.unmount().unwrap();
    assert_eq!(store.total_refs(), 0);
}

/// Kernel BPF_OBJ_PIN of `fd` at `path`: 0 or the errno.
fn kernel_pin(fd: i32, path: &Path) -> i32 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut attr = [0u8; 24];
    attr[0..8].copy_from_slice(&(c.as_ptr() as u64).to_ne_bytes());
    attr[8..12].copy_from_slice(&(fd as u32).to_ne_bytes());
    if bpf(6, &mut attr) == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

/// Kernel BPF_OBJ_GET of `path`: 0 (the fd is closed) or the errno.
fn kernel_get(path: &Path) -> i32 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut attr = [0u8; 24];
    attr[0..8].copy_from_slice(&(c.as_ptr() as u64).to_ne_bytes());
    let fd = bpf(7, &mut attr);
    if fd < 0 {
        return std::io::Error::last_os_error().raw_os_error().unwrap_or(-1);
    }
    // SAFETY: fd was just returned by bpf() and is owned here.
    unsafe { libc::close(fd as i32) };
    0
}

/// (operation, relative path): "pin" pins a map there, "get" gets it, "mkdir" makes a dir.
const PIN_GET_CASES: &[(&str, &str)] = &[
    ("pin", "p"),
    ("pin", "p"),
    ("pin", "a.b"),
    ("pin", "missing/x"),
    ("pin", "p/x"),
    ("pin", "."),
    ("pin", "maps.debug"),
    ("mkdir", "d"),
    ("pin", "d/q"),
    ("pin", "d/q"),
    ("pin", "d/x.y"),
    ("get", "p"),
    ("get", "d/q"),
    ("get", "d"),
    ("get", "missing"),
    ("get", "p/x"),
    ("get", "a.b"),
    ("get", "d/missing"),
];

#[test]
fn pin_and_get_errnos_match_kernel_bpffs() {
    if !require(&[Need::Root, Need::Fuse, Need::Bpf]) {
        return;
    }
    let long = "n".repeat(256);
    let kdir = TempDir::new("pinget-k");
    let kpath = kdir.path().to_owned();
    let long_k = long.clone();
    let kernel: Vec<i32> = in_private_mntns(move || {
        mount_kernel_bpffs(&kpath);
        let mut attr = [0u8; 72];
        attr[0..4].copy_from_slice(&2u32.to_ne_bytes());
        attr[4..8].copy_from_slice(&4u32.to_ne_bytes());
        attr[8..12].copy_from_slice(&4u32.to_ne_bytes());
        attr[12..16].copy_from_slice(&1u32.to_ne_bytes());
        let fd = bpf(0, &mut attr) as i32;
        assert!(fd >= 0);
        let mut out: Vec<i32> = PIN_GET_CASES
            .iter()
            .map(|(op, rel)| match *op {
                "pin" => kernel_pin(fd, &kpath.join(rel)),
                "get" => kernel_get(&kpath.join(rel)),
                _ => errno_of(fs::create_dir(kpath.join(rel))),
            })
            .collect();
        out.push(kernel_pin(fd, &kpath.join(&long_k)));
        // SAFETY: fd came from bpf() above and is owned here.
        unsafe { libc::close(fd) };
        out
    });

    let dir = TempDir::new("pinget-o");
    let store = Arc::new(FakeStore::default());
    let fs_ = BpfFs::new(store.clone());
    let mnt = fs_.mount(dir.path()).unwrap();
    let root = dir.path().to_owned();
    // As the supervisor does: the kernel resolves the parent (here: our resolve of the
    // same relative path), then pin/get on its inode.
    let pin = |rel: &str| -> i32 {
        let p = Path::new(rel);
        let (parent, name) = match (p.parent(), p.file_name()) {
            (Some(pp), Some(n)) => (pp, n),
            _ => (Path::new(""), OsStr::new(rel)),
        };
        let r = fs_
            .resolve(parent)
            .and_then(|ino| fs_.pin(ino, name, map(1), &root_cred(), 0o022));
        r.map_or_else(|e| e.errno(), |_| 0)
    };
    let mut ours: Vec<i32> = PIN_GET_CASES
        .iter()
        .map(|(op, rel)| match *op {
            "pin" => pin(rel),
            "get" => fs_
                .resolve(Path::new(rel))
                .and_then(|ino| fs_.get(ino, &root_cred(), may::READ | may::WRITE))
                .map_or_else(|e| e.errno(), |_| 0),
            _ => errno_of(fs::create_dir(root.join(rel))),
        })
        .collect();
    ours.push(pin(&long));
    drop(mnt);

    let mut diffs = Vec::new();
    for (i, (op, rel)) in PIN_GET_CASES.iter().enumerate() {
        println!("  {op} {rel:12} kernel {:3} ours {:3}", kernel[i], ours[i]);
        if kernel[i] != ours[i] {
            diffs.push(format!("{op} {rel}: kernel {} ours {}", kernel[i], ours[i]));
        }
    }
    let n = PIN_GET_CASES.len();
    println!(
        "  pin <256 chars> kernel {:3} ours {:3}",
        kernel[n], ours[n]
    );
    if kernel[n] != ours[n] {
        diffs.push(format!(
            "pin long name: kernel {} ours {}",
            kernel[n], ours[n]
        ));
    }
    assert!(
        diffs.is_empty(),
        "pin/get differ from the kernel:\n{}",
        diffs.join("\n")
    );
    assert_eq!(store.total_refs(), 0);
}
