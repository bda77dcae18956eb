//! # grove: green threads for Rust
//!
//! grove gives Rust what gevent gives Python: many lightweight green threads ("greenlets")
//! that read like plain blocking code, multiplexed by one event loop per OS thread. This
//! release holds the foundation the rest is built on:
//!
//! | layer | module | needs |
//! |---|---|---|
//! | the context switch, hand-written in assembly | [`arch`] | nothing (`no_std`) |
//! | the stack contract, static stacks | [`stack`] | nothing (`no_std`) |
//! | mmap'd guard-paged stacks, the per-thread pool, overflow reports | [`stack`] | `std` |
//! | raw greenlets (python-greenlet's model): switch, throw, parent | [`greenlet`] | `std` |
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
//! offers [`arch`] and [`stack::Stack`].
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod arch;
#[cfg(feature = "std")]
pub mod greenlet;
pub mod stack;
#[cfg(feature = "std")]
mod syscall;
