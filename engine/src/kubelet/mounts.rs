//! Volumes for the process runtime: the instance runs in its own mount
//! namespace, under a root that shows this machine's file system with each
//! volume mounted at its `mountPath`, so that a function reads
//! `/etc/secret/password` on the engine as it does in a pod.
//!
//! The root is made without touching the host's directories: a volume's
//! `mountPath` need not exist here. Along the way to each `mountPath` the
//! root has a directory of its own ("shadow") whose other entries are bind
//! mounts of the host's; everything else is the host's, bound as it is.
//! The directories are made before the fork ([`RootPlan::prepare`]); the
//! child only makes system calls ([`RootPlan::enter`]), as is all that is
//! safe between fork and exec. The instance is confined no further by this:
//! it is the engine's user with the engine's view of the machine, plus its
//! volumes.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::volumes::Mount;

/// The mounts a child makes before it runs the instance.
#[derive(Debug)]
pub struct RootPlan {
    root: CString,
    cwd: CString,
    binds: Vec<Bind>,
}

#[derive(Debug)]
struct Bind {
    source: CString,
    target: CString,
    read_only: bool,
}

/// A tree of the paths leading to mount targets.
#[derive(Default)]
struct Node {
    children: BTreeMap<std::ffi::OsString, Node>,
    /// A mount target ends here.
    target: bool,
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path holds a NUL byte"))
}

impl RootPlan {
    /// Makes the root under `root` (emptied first) for `mounts`, the
    /// instance starting in `cwd`. Needs root (a mount namespace).
    pub fn prepare(root: &Path, mounts: &[Mount], cwd: &Path) -> io::Result<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "volumes on the process runtime need the engine to run as root (it mounts \
                 them in a mount namespace of the instance's own); run this revision in the \
                 container runtime (annotation okonomi.dev/runtime: container)",
            ));
        }
        let _ = std::fs::remove_dir_all(root);
        std::fs::create_dir_all(root)?;
        let mut tree = Node::default();
        for mount in mounts {
            let mut node = &mut tree;
            for component in Path::new(&mount.target).components() {
                match component {
                    Component::RootDir => {}
                    Component::Normal(name) => {
                        node = node.children.entry(name.to_os_string()).or_default();
                    }
                    _ => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!(
                                "mountPath {:?} must be absolute, without '..'",
                                mount.target
                            ),
                        ));
                    }
                }
            }
            node.target = true;
        }
        let mut binds = Vec::new();
        shadow(Path::new("/"), root, &tree, &mut binds)?;
        for mount in mounts {
            binds.push(Bind {
                source: c_path(&mount.source)?,
                target: c_path(&root.join(mount.target.trim_start_matches('/')))?,
                read_only: mount.read_only,
            });
        }
        Ok(Self {
            root: c_path(root)?,
            cwd: c_path(cwd)?,
            binds,
        })
    }

    /// In the child, between fork and exec: a private mount namespace, the
    /// binds, then `chroot` into the root and `chdir` to the working
    /// directory. Only system calls: nothing allocates.
    pub fn enter(&self) -> io::Result<()> {
        fn check(result: libc::c_int) -> io::Result<()> {
            if result == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
        let null = std::ptr::null::<libc::c_char>();
        let slash = c"/";
        // SAFETY: every pointer is a NUL-terminated string owned by `self`
        // (or a literal) and outlives the call; unshare, mount, chroot and
        // chdir are async-signal-safe system calls.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                null,
                slash.as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            for bind in &self.binds {
                check(libc::mount(
                    bind.source.as_ptr(),
                    bind.target.as_ptr(),
                    null,
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?;
                if bind.read_only {
                    check(libc::mount(
                        null,
                        bind.target.as_ptr(),
                        null,
                        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
                        std::ptr::null(),
                    ))?;
                }
            }
            check(libc::chroot(self.root.as_ptr()))?;
            check(libc::chdir(self.cwd.as_ptr() as *const libc::c_char))?;
        }
        Ok(())
    }

    /// The root's path (for messages).
    pub fn root(&self) -> &CStr {
        &self.root
    }
}

/// Mirrors `host` into `shadow`: entries on the way to a target become
/// directories of the shadow's own (recursively), the rest bind mounts of
/// the host's (symbolic links are copied as links).
fn shadow(host: &Path, shadow_dir: &Path, node: &Node, binds: &mut Vec<Bind>) -> io::Result<()> {
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(host)? {
        let entry = entry?;
        let name = entry.file_name();
        let from = entry.path();
        let to = shadow_dir.join(&name);
        let kind = entry.file_type()?;
        if let Some(child) = node.children.get(&name) {
            seen.insert(name.clone());
            if kind.is_symlink() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "a mountPath goes through {}, a symbolic link on this machine: choose a \
                         mountPath beside it, or run the revision in the container runtime",
                        from.display()
                    ),
                ));
            }
            std::fs::create_dir_all(&to)?;
            if kind.is_dir() && !child.target {
                shadow(&from, &to, child, binds)?;
            } else {
                // A target replaces what the host has there.
                make_missing(&to, child)?;
            }
            continue;
        }
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
            continue;
        }
        if kind.is_dir() {
            std::fs::create_dir(&to)?;
        } else {
            std::fs::File::create(&to)?;
        }
        binds.push(Bind {
            source: c_path(&from)?,
            target: c_path(&to)?,
            read_only: false,
        });
    }
    for (name, child) in &node.children {
        if !seen.contains(name) {
            let to = shadow_dir.join(name);
            std::fs::create_dir_all(&to)?;
            make_missing(&to, child)?;
        }
    }
    Ok(())
}

/// Directories below a path the host does not have.
fn make_missing(dir: &Path, node: &Node) -> io::Result<()> {
    for (name, child) in &node.children {
        let to = dir.join(name);
        std::fs::create_dir_all(&to)?;
        make_missing(&to, child)?;
    }
    Ok(())
}

/// Where a Pod's root lives.
pub fn root_dir(pod_dir: &Path) -> PathBuf {
    pod_dir.join("root")
}
