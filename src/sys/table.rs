//! The registration table of the backends whose kernel keeps none we can ask (poll, select) or
//! whose kernel does not report `EEXIST`/`ENOENT` the way epoll does (kqueue).
//!
//! A dense `Vec` in registration order (poll and select build their arrays from it on every
//! wait) plus an index from fd to position. Deletion is `swap_remove`. A rotating cursor keeps
//! the ready scan fair when more fds are ready than one wait can report.

use super::Interest;
use crate::syscall::syscall;
use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;

/// One registered fd.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Registration {
    /// The registered descriptor.
    pub(crate) fd: RawFd,
    /// What its events carry.
    pub(crate) token: usize,
    /// The directions it is watched in (never empty).
    pub(crate) interest: Interest,
}

/// fd -> (token, interest), in a dense vector.
#[derive(Debug, Default)]
pub(crate) struct Table {
    list: Vec<Registration>,
    index: HashMap<RawFd, usize>,
    /// Where the next ready scan starts (see [`Table::scan_order`]).
    cursor: usize,
}

impl Table {
    /// Adds `fd`; `EEXIST` if it is already there.
    pub(crate) fn add(&mut self, fd: RawFd, token: usize, interest: Interest) -> io::Result<()> {
        if self.index.contains_key(&fd) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        self.index.insert(fd, self.list.len());
        self.list.push(Registration {
            fd,
            token,
            interest,
        });
        Ok(())
    }

    /// Replaces the token and interest of `fd` and returns the old registration; `ENOENT` if
    /// it is not there.
    pub(crate) fn modify(
        &mut self,
        fd: RawFd,
        token: usize,
        interest: Interest,
    ) -> io::Result<Registration> {
        let i = *self
            .index
            .get(&fd)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let old = self.list[i];
        self.list[i] = Registration {
            fd,
            token,
            interest,
        };
        Ok(old)
    }

    /// Removes `fd` and returns its registration; `ENOENT` if it is not there.
    pub(crate) fn delete(&mut self, fd: RawFd) -> io::Result<Registration> {
        let i = self
            .index
            .remove(&fd)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let old = self.list.swap_remove(i);
        if let Some(moved) = self.list.get(i) {
            self.index.insert(moved.fd, i);
        }
        Ok(old)
    }

    /// The registration of `fd`, if any.
    #[cfg_attr(
        not(any(
            target_vendor = "apple",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd",
            target_os = "dragonfly"
        )),
        allow(dead_code)
    )]
    pub(crate) fn get(&self, fd: RawFd) -> Option<&Registration> {
        self.index.get(&fd).map(|&i| &self.list[i])
    }

    /// Every registration, in table order (the order poll's array is built in).
    pub(crate) fn list(&self) -> &[Registration] {
        &self.list
    }

    /// Table positions in the order a ready scan should visit them: starting at the cursor,
    /// wrapping around.
    pub(crate) fn scan_order(&self) -> impl Iterator<Item = usize> {
        let n = self.list.len();
        let start = if n == 0 { 0 } else { self.cursor % n };
        (start..n).chain(0..start)
    }

    /// A scan stopped (the caller's buffer was full) after reporting position `i`: the next scan
    /// starts just after it, so fds further on are not starved.
    pub(crate) fn resume_after(&mut self, i: usize) {
        self.cursor = i + 1;
    }
}

/// `EBADF` unless `fd` is an open descriptor (what epoll checks by itself).
pub(crate) fn check_open(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD only reads the descriptor's flags; a bad fd is EBADF.
    unsafe { syscall!(fcntl(fd, libc::F_GETFD)) }?;
    Ok(())
}
