//! # grove: green threads for Rust
//!
//! grove gives Rust what gevent gives Python: many lightweight green threads ("greenlets")
//! that read like plain blocking code, multiplexed by one event loop per OS thread. The
//! layers, bottom up:
//!
//! | layer | module | needs |
//! |---|---|---|
//! | the context switch, hand-written in assembly | [`arch`] | nothing (`no_std`) |
//! | the stack contract, static stacks | [`stack`] | nothing (`no_std`) |
//! | typed coroutines: `resume`/`suspend` with typed values, on any stack | [`coroutine`] | nothing (`no_std`) |
//! | mmap'd guard-paged stacks, the per-thread pool, overflow reports | [`stack`] | `std` |
//! | raw greenlets (python-greenlet's model): switch, throw, parent | [`greenlet`] | `std` |
//! | the I/O pollers (epoll, kqueue, poll, select) and cross-thread wake-ups | [`sys`] | `std` |
//! | the hub: per-thread loop, timers, fd readiness, [`HubHandle`](hub::HubHandle) | [`hub`] | `std` |
//! | scheduled greenlets: [`spawn`], [`Greenlet::join`], [`Greenlet::kill`], [`sleep`], [`yield_now`], [`timeout`] | crate root | `std` |
//! | waiting on several things: [`wait_any`], [`iwait`], [`Event`] | [`wait`] | `std` |
//! | introspection: [`debug::run_info`], the blocking monitor | [`debug`], [`hub::monitor`] | `std` |
//! | synchronisation: [`Event`], [`AsyncResult`], [`Semaphore`], [`Lock`], [`RLock`], [`Queue`], [`Channel`], cross-thread [`sync::mpsc`] | [`sync`] | `std` |
//! | groups of greenlets: [`pool::Pool`], [`pool::Group`], `map`/`imap`/`imap_unordered` | [`pool`] | `std` |
//! | the HTTP/1.1 protocol core (sans-I/O): request parsing, the connection state machine, response writing | [`http`] | `std` |
//! | subprocesses: [`process::Command`], cooperative pipes and waits, reaping without zombies (pidfd or `SIGCHLD`) | [`process`] | `std` |
//! | Unix signals: [`signal::handle`] runs a closure in a greenlet per arrival, [`signal::wait`] | [`signal`] | `std` |
//!
//! Above the hub, gevent's greenlet API: [`spawn`], [`spawn_later`], [`Greenlet::join`],
//! [`Greenlet::kill`], links, [`joinall`], [`killall`], [`wait_any`]/[`iwait`] over anything
//! [`Waitable`], scoped [`timeout`]s, [`Event`], [`greenlet_local!`], the panic hook
//! ([`set_panic_hook`]), introspection ([`debug::run_info`]) and the blocking monitor
//! ([`hub::monitor`]). All of it works under every poller backend.
//!
//! ```
//! let a = grove::spawn(|| {
//!     grove::sleep(std::time::Duration::from_millis(10));
//!     "slept"
//! });
//! let b = grove::spawn(|| 6 * 7); // neither has run yet: they start when main waits
//! assert_eq!(b.get(), Ok(42));
//! assert_eq!(a.get(), Ok("slept"));
//! ```
//!
//! The raw greenlets underneath, python-greenlet style:
//!
//! ```
//! use grove::greenlet::Greenlet;
//!
//! let g = Greenlet::new(|first| {
//!     let n = *first.downcast::<i32>().unwrap();
//!     let back = Greenlet::main().switch(Box::new(n + 1)).unwrap();
//!     Box::new(*back.downcast::<i32>().unwrap() * 10)
//! })
//! .unwrap();
//! let mid = g.switch(Box::new(1)).unwrap();
//! assert_eq!(*mid.downcast::<i32>().unwrap(), 2);
//! let end = g.switch(Box::new(4)).unwrap();
//! assert_eq!(*end.downcast::<i32>().unwrap(), 40);
//! assert!(g.is_dead());
//! ```
//!
//! Features: `std` (default). With default features off the crate is `#![no_std]` and
//! offers [`arch`], [`stack::Stack`] and [`coroutine`].
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod arch;
pub mod coroutine;
#[cfg(feature = "std")]
pub mod debug;
#[cfg(feature = "std")]
mod fd;
#[cfg(feature = "std")]
pub mod fs;
#[cfg(feature = "std")]
pub mod greenlet;
#[cfg(feature = "std")]
pub mod http;
#[cfg(feature = "std")]
pub mod hub;
#[cfg(feature = "std")]
pub mod net;
#[cfg(feature = "std")]
pub mod pool;
#[cfg(feature = "std")]
pub mod process;
#[cfg(feature = "std")]
pub mod server;
#[cfg(feature = "std")]
pub mod signal;
#[cfg(feature = "std")]
mod spawn;
pub mod stack;
#[cfg(feature = "std")]
pub mod sync;
#[cfg(feature = "std")]
pub mod sys;
#[cfg(feature = "std")]
mod syscall;
#[cfg(feature = "std")]
pub mod threadpool;
#[cfg(feature = "std")]
mod timeout;
#[cfg(feature = "std")]
pub mod wait;

#[cfg(feature = "std")]
pub use greenlet::GreenletExit;
#[cfg(feature = "std")]
pub use hub::event_loop::{sleep, wait_readable, wait_writable, yield_now};
#[cfg(feature = "std")]
pub use spawn::{
    current, joinall, killall, reset_panic_hook, set_panic_hook, spawn, spawn_later, Builder,
    Current, Greenlet, GreenletError, PanicReport,
};
#[cfg(feature = "std")]
pub use sync::{AsyncResult, Channel, Event, Lock, Queue, RLock, Semaphore};
#[cfg(feature = "std")]
pub use timeout::{timeout, Elapsed};
#[cfg(feature = "std")]
pub use wait::{iwait, wait_all, wait_any, Waitable};
