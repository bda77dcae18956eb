//! Raw greenlets, in python-greenlet's model: the primitive the hub stands on.
//!
//! A [`Greenlet`] is a function with its own stack. [`Greenlet::switch`] suspends the running
//! greenlet and continues another, handing it a value; whatever later switches back hands
//! one in return. When a greenlet's function returns, its result goes to its *parent* (by
//! default the greenlet that created it), whose pending `switch` returns it. A panic inside a
//! greenlet is caught at its entry and handed to the parent the same way, as
//! [`SwitchError::Panicked`]. [`Greenlet::throw`] unwinds a suspended greenlet so that its
//! destructors run; dropping the last handle to a suspended greenlet does the same.
//!
//! Every thread has a *main* greenlet, its original stack, created on first use. Greenlets
//! are `!Send`: a greenlet lives and dies on the thread that created it.
//!
//! # Where things live
//!
//! A greenlet's bookkeeping (its `Header`) and its function are stored at the top of its own
//! stack, not on the heap: creating a greenlet from the stack pool allocates nothing.
//!
//! ```text
//!   top ┌──────────────────────────────┐
//!       │ Header: context, life, id,   │  <- Greenlet handles point here
//!       │ parent, stack owner          │
//!       ├──────────────────────────────┤
//!       │ the closure F (moved in)     │
//!       ├──────────────────────────────┤
//!       │ link area + initial frame    │  (arch::Context::fresh)
//!       │ ... the greenlet's calls ... │
//!  base └──────────────────────────────┘
//!       │ guard page                   │
//! ```

mod local;
mod state;

pub use local::LocalKey;
pub use state::State;

use crate::arch::{self, Context};
use crate::stack::{pool, MmapStack, Stack, MIN_STACK_SIZE};
use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop};
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};

/// The values greenlets hand each other. `Box<()>` and other zero-sized values do not
/// allocate.
pub type Value = Box<dyn Any>;

/// The payload a greenlet unwinds with when it is killed by [`Greenlet::throw`] or by
/// dropping its last handle (python's `GreenletExit`). Code that catches panics should let it
/// through (`std::panic::resume_unwind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreenletExit;

/// Why a switch did not come back with a value.
#[derive(Debug)]
pub enum SwitchError {
    /// The target has finished and cannot run again.
    Dead,
    /// A greenlet (a child, or one whose parent chain led here) ended by panicking.
    /// (Boxed, so that a switch's `Result` stays three words on the hot path.)
    Panicked(Box<Panic>),
    /// A greenlet ended by being killed ([`GreenletExit`]).
    Killed {
        /// Its id.
        id: u64,
    },
    /// `set_parent` would have made a greenlet its own ancestor.
    ParentCycle,
}

/// A greenlet's panic, caught at its entry and handed to its parent.
#[derive(Debug)]
pub struct Panic {
    /// The greenlet's id.
    pub id: u64,
    /// Its name, if it had one.
    pub name: Option<String>,
    /// The panic message, when the payload was a string.
    pub message: String,
    /// The panic payload, for `std::panic::resume_unwind`.
    pub payload: Box<dyn Any + Send>,
}

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwitchError::Dead => f.write_str("greenlet has finished and cannot be switched to"),
            SwitchError::Panicked(p) => {
                write!(f, "greenlet {}", p.id)?;
                if let Some(n) = &p.name {
                    write!(f, " ({n})")?;
                }
                write!(f, " panicked: {}", p.message)
            }
            SwitchError::Killed { id } => write!(f, "greenlet {id} was killed"),
            SwitchError::ParentCycle => f.write_str("a greenlet cannot be its own ancestor"),
        }
    }
}

impl std::error::Error for SwitchError {}

/// What one greenlet hands another travels in the switch's `arg` register: the address of a
/// message on the sender's stack, which the receiver moves out (`ptr::read`) before anything
/// else happens, while the sender is still suspended. The low two bits say what is there (the
/// messages are 8-byte aligned, so the bits are free):
///
/// * `VALUE`: a [`Value`], handed over by [`Greenlet::switch`]. The common case costs the
///   receiver one bit test and the value's two words.
/// * `THROW`: nothing (the address is 0): unwind with [`GreenletExit`] where you are suspended.
/// * `FINISHED`: a [`Finished`], the last message of a greenlet.
const VALUE: usize = 0;
const THROW: usize = 1;
const FINISHED: usize = 2;
const KIND: usize = 3;

/// The last message of a greenlet, to the ancestor that takes over from it.
struct Finished {
    /// The finished greenlet's header, still live: the receiver releases it if no handle is
    /// left.
    from: NonNull<Header>,
    /// What its body returned, or the payload it panicked with ([`GreenletExit`] if it was
    /// killed).
    outcome: std::thread::Result<Value>,
}

/// Who owns the memory a greenlet runs on.
enum StackOwner {
    /// The thread's own stack (the main greenlet).
    Thread,
    /// An [`MmapStack`] from the per-thread pool, whose parts are the header's `base` and `top`
    /// (`MmapStack::into_raw_parts`); returned to the pool when the greenlet is released.
    Pooled,
    /// Brought by the user.
    Custom(Box<CustomStack>),
}

/// A stack brought by the user, and whether grove registered it with valgrind (an
/// [`MmapStack`] registers itself; other memory is registered for as long as a greenlet runs
/// on it).
struct CustomStack {
    stack: Box<dyn Stack>,
    valgrind: crate::stack::valgrind::Registration,
}

/// Runs the closure stored at the given address, moving it out (see `run_closure`).
type RunFn = unsafe fn(*mut u8, Value) -> Value;

/// How far a greenlet is in its life, as stored. [`State::Running`] and [`State::Suspended`]
/// are one stored state, `Started`: a started greenlet that has not finished is running
/// exactly when it is its thread's current one (`CURRENT`), so a switch changes no stored
/// state at all. [`Greenlet::state`] tells the two apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    NotStarted,
    Started,
    Finished,
}

/// A greenlet's bookkeeping. For a greenlet with its own stack it lives at the top of that
/// stack; for a main greenlet, on the heap.
struct Header {
    /// The saved context; written by the switch itself, hence the UnsafeCell.
    ctx: UnsafeCell<Context>,
    life: Cell<Life>,
    /// Live `Greenlet` handles. When it drops to 0 the greenlet is killed (if suspended) and
    /// released (if not running).
    handles: Cell<usize>,
    id: u64,
    name: Option<Box<str>>,
    parent: Cell<Option<Greenlet>>,
    /// Read out (once) by `release`.
    stack: ManuallyDrop<StackOwner>,
    /// Usable stack range and guard size (0, 0, 0 for the main greenlet).
    base: usize,
    top: usize,
    guard: usize,
    /// The lowest saved stack pointer seen at a switch: how deep the stack has been used,
    /// for the pool's decision to give memory back.
    low_sp: Cell<usize>,
    /// The closure (on the stack, below the header) and how to run or drop it.
    closure: *mut u8,
    run: Cell<Option<RunFn>>,
    drop_closure: unsafe fn(*mut u8),
    /// The greenlet whose `arch::switch` *call* handed control to us and is still waiting for
    /// us to come back (null if none). Switching back to it uses `arch::switch_return`, whose
    /// `ret` the CPU predicts; any other switch uses `arch::switch`. A stale value costs a
    /// mispredicted branch, never correctness: both switches handle the same frames.
    resumer: Cell<*const Header>,
    /// Greenlet-local values ([`LocalKey`]), keyed by the key's address.
    locals: local::Locals,
}

impl Header {
    /// The parent's header, if there is a parent; the handle that keeps it alive stays where
    /// it is.
    #[inline]
    fn parent_header(&self) -> Option<NonNull<Header>> {
        // SAFETY: a plain read of the handle's pointer. The cell's contents are only ever
        // replaced whole (`set`, `replace`, `take`), never borrowed, so nothing else refers to
        // them while we read; this thread is the only one with access to the header.
        unsafe { (*self.parent.as_ptr()).as_ref().map(|g| g.h) }
    }
}

/// A handle to a greenlet. Cloning makes another handle to the same greenlet; when the last
/// handle goes, a suspended greenlet is killed (unwound) and its stack released.
pub struct Greenlet {
    h: NonNull<Header>,
    /// `!Send` and `!Sync`: a greenlet never leaves its thread.
    _not_send: PhantomData<*const ()>,
}

/// Where to find a greenlet whose guard page was hit: filled for the overflow handler.
pub(crate) struct GuardHit {
    pub id: u64,
    pub name: *const u8,
    pub name_len: usize,
    pub stack_kib: usize,
}

thread_local! {
    /// The running greenlet of this thread (null until grove is first used on it). A plain
    /// `const` cell without a destructor: readable from a signal handler and during thread
    /// exit.
    static CURRENT: Cell<*const Header> = const { Cell::new(ptr::null()) };
    /// Keeps this thread's main greenlet alive until the thread ends.
    static MAIN: MainHandle = const { MainHandle(Cell::new(None)) };
    /// The last greenlet id this thread handed out, from a block it reserved (0: none yet).
    static LAST_ID: Cell<u64> = const { Cell::new(0) };
}

struct MainHandle(Cell<Option<Greenlet>>);

impl Drop for MainHandle {
    fn drop(&mut self) {
        // The thread is ending: give up the main greenlet's thread-held handle. If nothing else
        // holds one, this frees the main header.
        drop(self.0.take());
    }
}

/// Ids are reserved in blocks of ID_BLOCK (a power of two), so that a thread touches the shared
/// counter once per block. Blocks start at 1 plus a multiple of ID_BLOCK, so each one ends on a
/// multiple of it.
static NEXT_ID_BLOCK: AtomicU64 = AtomicU64::new(1);
const ID_BLOCK: u64 = 1024;

fn next_id() -> u64 {
    LAST_ID.with(|last| {
        let id = if last.get() % ID_BLOCK == 0 {
            // This thread's block is used up (or it has none yet): reserve the next one.
            NEXT_ID_BLOCK.fetch_add(ID_BLOCK, Ordering::Relaxed)
        } else {
            last.get() + 1
        };
        last.set(id);
        id
    })
}

/// The running greenlet's header, creating the thread's main greenlet on first use.
#[inline(always)]
fn current_header() -> NonNull<Header> {
    let cur = CURRENT.with(|c| c.get());
    match NonNull::new(cur as *mut Header) {
        Some(h) => h,
        None => init_main(),
    }
}

#[cold]
fn init_main() -> NonNull<Header> {
    crate::stack::overflow::install();
    crate::stack::overflow::ensure_altstack();
    let header = Box::new(Header {
        ctx: UnsafeCell::new(Context::running()),
        life: Cell::new(Life::Started),
        handles: Cell::new(1),
        id: next_id(),
        name: Some("main".into()),
        parent: Cell::new(None),
        stack: ManuallyDrop::new(StackOwner::Thread),
        base: 0,
        top: 0,
        guard: 0,
        low_sp: Cell::new(usize::MAX),
        closure: ptr::null_mut(),
        run: Cell::new(None),
        drop_closure: drop_nothing,
        resumer: Cell::new(ptr::null()),
        locals: local::Locals::default(),
    });
    let raw = Box::into_raw(header);
    // SAFETY: Box::into_raw never returns null.
    let h = unsafe { NonNull::new_unchecked(raw) };
    CURRENT.with(|c| c.set(raw));
    let handle = Greenlet {
        h,
        _not_send: PhantomData,
    };
    // If thread-local storage is already being torn down (grove used from a thread-local
    // destructor that runs after MAIN's), keep the header alive for the rest of the thread:
    // a small leak, rather than a current greenlet that points to freed memory.
    let mut handle = Some(handle);
    let _ = MAIN.try_with(|m| m.0.set(handle.take()));
    mem::forget(handle);
    h
}

unsafe fn drop_nothing(_: *mut u8) {}

/// Runs the closure of type `F` stored at `p`, moving it out.
///
/// # Safety
///
/// `p` must point to a valid `F` that is not used again afterwards.
unsafe fn run_closure<F: FnOnce(Value) -> Value>(p: *mut u8, v: Value) -> Value {
    // SAFETY: the caller hands over the closure; it is read exactly once.
    let f = unsafe { ptr::read(p as *mut F) };
    f(v)
}

/// Drops the closure of type `F` stored at `p` without running it.
///
/// # Safety
///
/// `p` must point to a valid `F` that is not used again afterwards.
unsafe fn drop_closure<F>(p: *mut u8) {
    // SAFETY: as the caller promises.
    unsafe { ptr::drop_in_place(p as *mut F) }
}

/// Configures a greenlet before creating it: name, stack size or stack, parent.
pub struct Builder {
    name: Option<Box<str>>,
    stack_size: usize,
    stack: Option<Box<dyn Stack>>,
    parent: Option<Greenlet>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// Defaults: no name, a stack of the [default size](crate::stack::default_size) from the
    /// pool, the current greenlet as parent.
    pub fn new() -> Builder {
        Builder {
            name: None,
            stack_size: crate::stack::default_size(),
            stack: None,
            parent: None,
        }
    }

    /// Names the greenlet (shown in overflow reports and `Debug`).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into().into_boxed_str());
        self
    }

    /// Usable stack bytes (rounded up to whole pages, at least [`MIN_STACK_SIZE`]).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = bytes.max(MIN_STACK_SIZE);
        self
    }

    /// Runs the greenlet on a stack you provide instead of one from the pool.
    pub fn stack(mut self, stack: impl Stack + 'static) -> Builder {
        self.stack = Some(Box::new(stack));
        self
    }

    /// The greenlet to return to when this one finishes (default: the creator).
    pub fn parent(mut self, parent: &Greenlet) -> Builder {
        self.parent = Some(parent.clone());
        self
    }

    /// Creates the greenlet, not yet started: the first [`Greenlet::switch`] into it calls `f`
    /// with the switched value. Whatever `f` returns goes to the parent.
    ///
    /// Fails if no stack can be had (the error says why, e.g. the kernel's map count limit),
    /// or if a provided stack is too small for the greenlet's bookkeeping.
    pub fn build<F>(self, f: F) -> io::Result<Greenlet>
    where
        F: FnOnce(Value) -> Value + 'static,
    {
        // Until the header owns it, the stack is owned here: an error below drops it.
        let (pooled, owner, (base, top, guard)) = match self.stack {
            None => {
                let s = pool::take(self.stack_size)?;
                let bounds = (s.base() as usize, s.top() as usize, s.guard_size());
                (Some(s), StackOwner::Pooled, bounds)
            }
            Some(s) => {
                let (base, top) = (s.base() as usize, s.top() as usize);
                // The `Stack` contract promises this, but an error is kinder than a crash. (A
                // pooled stack is right by construction.)
                if top % 16 != 0 || top.saturating_sub(base) < MIN_STACK_SIZE {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "grove: a greenlet stack must be 16-byte aligned at the top and at \
                             least {MIN_STACK_SIZE} bytes; this one has {} bytes, top at \
                             {top:#x}",
                            top.saturating_sub(base)
                        ),
                    ));
                }
                let bounds = (base, top, s.guard_size());
                // Boxed once more: a thin pointer keeps the owner two words, which the header
                // writes and reads in registers.
                let valgrind = crate::stack::valgrind::Registration::new(base, top);
                (
                    None,
                    StackOwner::Custom(Box::new(CustomStack { stack: s, valgrind })),
                    bounds,
                )
            }
        };
        let parent = match self.parent {
            Some(p) => p,
            None => Greenlet::current(),
        };

        // Lay out the top of the stack: header, then the closure, then the fresh context.
        let Some(crate::stack::TopLayout {
            header: header_at,
            closure: closure_at,
            ctx_top,
        }) = crate::stack::carve_top(
            base,
            top,
            std::alloc::Layout::new::<Header>(),
            std::alloc::Layout::new::<F>(),
        )
        else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "grove: the greenlet's closure ({} bytes) leaves too little of its {} byte \
                     stack; box the captured data or use a larger stack",
                    mem::size_of::<F>(),
                    top - base
                ),
            ));
        };

        // From here on the header owns the stack; `release` makes a pooled one again from the
        // header's `base` and `top`.
        if let Some(s) = pooled {
            let parts = s.into_raw_parts();
            debug_assert_eq!(parts, (base, top));
        }
        let header = header_at as *mut Header;
        let closure = closure_at as *mut F;
        // SAFETY: `closure_at..closure_at + size_of::<F>()` lies in the stack's usable range
        // (checked above), is aligned for F, and nothing else uses it.
        unsafe { closure.write(f) };
        // SAFETY: ctx_top is 16-byte aligned and below it lies more than MIN_STACK_SIZE / 2 of
        // this stack, which only this greenlet will run on; greenlet_entry never returns or
        // unwinds.
        let ctx = unsafe { Context::fresh(ctx_top as *mut u8, greenlet_entry, header as *mut u8) };
        // Backtraces inside it continue into its parent (see `name_unwind_parent`).
        // SAFETY: as in `name_unwind_parent`: the parent's header outlives the handle the new
        // header keeps to it.
        unsafe { ctx.set_unwind_parent(parent.header().ctx.get()) };
        // SAFETY: header_at..top is in the stack's usable range and aligned for Header.
        unsafe {
            header.write(Header {
                ctx: UnsafeCell::new(ctx),
                life: Cell::new(Life::NotStarted),
                handles: Cell::new(1),
                id: next_id(),
                name: self.name,
                parent: Cell::new(Some(parent)),
                stack: ManuallyDrop::new(owner),
                base,
                top,
                guard,
                low_sp: Cell::new(ctx_top),
                closure: closure as *mut u8,
                run: Cell::new(Some(run_closure::<F>)),
                drop_closure: drop_closure::<F>,
                resumer: Cell::new(ptr::null()),
                locals: local::Locals::default(),
            })
        };
        // SAFETY: header is not null (it is inside the stack).
        let h = unsafe { NonNull::new_unchecked(header) };
        Ok(Greenlet {
            h,
            _not_send: PhantomData,
        })
    }
}

impl Greenlet {
    /// Creates a greenlet running `f` on a pooled stack of the default size, with the
    /// current greenlet as parent. It starts at the first [`switch`](Greenlet::switch).
    pub fn new<F>(f: F) -> io::Result<Greenlet>
    where
        F: FnOnce(Value) -> Value + 'static,
    {
        Builder::new().build(f)
    }

    /// A [`Builder`] for a named greenlet, a custom stack size or stack, or another parent.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The greenlet running now (this thread's main greenlet outside any other).
    pub fn current() -> Greenlet {
        let h = current_header();
        Greenlet::from_header(h)
    }

    /// This thread's main greenlet: the thread's original stack.
    pub fn main() -> Greenlet {
        current_header();
        let h = MAIN
            .with(|m| {
                let g = m.0.take();
                let h = g.as_ref().map(|g| g.h);
                m.0.set(g);
                h
            })
            .expect("grove: the main greenlet is gone: the thread is exiting");
        Greenlet::from_header(h)
    }

    fn from_header(h: NonNull<Header>) -> Greenlet {
        // SAFETY: h is a live header (we hold or are about to hold a handle; headers outlive
        // their handles).
        let hd = unsafe { h.as_ref() };
        hd.handles.set(hd.handles.get() + 1);
        Greenlet {
            h,
            _not_send: PhantomData,
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: a handle keeps its header alive (released only when handles reach 0).
        unsafe { self.h.as_ref() }
    }

    /// A number unique among all greenlets of the process.
    pub fn id(&self) -> u64 {
        self.header().id
    }

    /// The name given at creation (`"main"` for main greenlets).
    pub fn name(&self) -> Option<&str> {
        self.header().name.as_deref()
    }

    /// Where the greenlet is in its life.
    pub fn state(&self) -> State {
        match self.header().life.get() {
            Life::NotStarted => State::NotStarted,
            Life::Finished => State::Finished,
            Life::Started if self.is_current() => State::Running,
            Life::Started => State::Suspended,
        }
    }

    /// Whether this is the greenlet running now (false during thread exit, once the thread has
    /// let go of its greenlets).
    fn is_current(&self) -> bool {
        CURRENT
            .try_with(|c| ptr::eq(c.get(), self.h.as_ptr()))
            .unwrap_or(false)
    }

    /// Finished: its body returned, panicked or was killed.
    pub fn is_dead(&self) -> bool {
        self.state() == State::Finished
    }

    /// Started and not finished (python's `bool(g)`).
    pub fn is_active(&self) -> bool {
        self.state().is_active()
    }

    /// Whether this is a thread's main greenlet.
    pub fn is_main(&self) -> bool {
        self.header().top == 0
    }

    /// The address of its header (for a greenlet with a stack of its own, at the top of that
    /// stack, just above the frames it runs on): a hint for the hub to prefetch before it
    /// switches in, never dereferenced.
    #[inline]
    pub(crate) fn header_addr(&self) -> usize {
        self.h.as_ptr() as usize
    }

    /// Usable bytes of its stack (0 for a main greenlet, whose stack is the thread's).
    pub fn stack_size(&self) -> usize {
        self.header().top - self.header().base
    }

    /// The greenlet this one returns to when it finishes.
    pub fn parent(&self) -> Option<Greenlet> {
        let hd = self.header();
        let p = hd.parent.take();
        let r = p.clone();
        hd.parent.set(p);
        r
    }

    /// Points this greenlet's unwind slot at its parent's context, so that a backtrace taken
    /// inside it continues into its parent's suspended frames (see `docs/switch.md`).
    fn name_unwind_parent(&self) {
        let hd = self.header();
        let p = hd.parent.take();
        if let Some(parent) = &p {
            // SAFETY: parents form a tree (`set_parent` refuses cycles), so the chain of unwind
            // parents ends at a main greenlet; the parent's header, with its context, lives at
            // least as long as this greenlet holds this handle to it (a new parent is named
            // before the old handle is dropped); and whenever this greenlet runs its parent
            // is not running (one context runs at a time), so its saved sp is current. A
            // finished parent's stack is kept while handles to it exist, with its final frame.
            unsafe { (*hd.ctx.get()).set_unwind_parent(parent.header().ctx.get()) };
        }
        hd.parent.set(p);
    }

    /// Changes the parent. Fails with [`SwitchError::ParentCycle`] if `parent` is this
    /// greenlet or one of its descendants.
    pub fn set_parent(&self, parent: &Greenlet) -> Result<(), SwitchError> {
        let mut cursor = Some(parent.clone());
        while let Some(g) = cursor {
            if g == *self {
                return Err(SwitchError::ParentCycle);
            }
            cursor = g.parent();
        }
        let old = self.header().parent.replace(Some(parent.clone()));
        self.name_unwind_parent();
        drop(old);
        Ok(())
    }

    /// Suspends the current greenlet and continues this one, which receives `v`: as its
    /// function's argument if it has not started, else as the result of its own pending
    /// `switch`. Returns what is handed back when something switches to the caller again.
    ///
    /// Errors: [`SwitchError::Dead`] if this greenlet has finished; if the greenlet that
    /// switched back to us finished by panicking or being killed (a child ending), that
    /// outcome as [`SwitchError::Panicked`] or [`SwitchError::Killed`].
    ///
    /// Switching to the running greenlet itself returns `v` at once.
    #[inline(always)]
    pub fn switch(&self, v: Value) -> Result<Value, SwitchError> {
        let cur = current_header();
        if cur == self.h {
            return Ok(v);
        }
        // Not the running one (that is `cur`), so not started or suspended, unless finished.
        if self.header().life.get() == Life::Finished {
            return Err(SwitchError::Dead);
        }
        // SAFETY: `cur` is the running greenlet's live header, `self.h` is a live header that
        // can be switched to (checked above), and they differ.
        unsafe { transfer_value(cur, self.h, v) }
    }

    /// Kills this greenlet: raises [`GreenletExit`] at the point where it is suspended, so
    /// that its stack unwinds and its destructors run. When it dies, control goes to its
    /// parent as usual (so by default back here) and this returns
    /// `Err(SwitchError::Killed)`; if it catches the exit and switches back instead, this
    /// returns what it handed over.
    ///
    /// A greenlet that has not started never runs: it is marked finished at once and its
    /// closure dropped. Throwing into the running greenlet (yourself) unwinds right here.
    /// Throwing into a finished greenlet returns `Err(SwitchError::Dead)`.
    pub fn throw(&self) -> Result<Value, SwitchError> {
        let cur = current_header();
        if cur == self.h {
            panic::resume_unwind(Box::new(GreenletExit));
        }
        let hd = self.header();
        match hd.life.get() {
            Life::Finished => Err(SwitchError::Dead),
            Life::NotStarted => {
                hd.life.set(Life::Finished);
                if hd.run.take().is_some() {
                    // SAFETY: the closure was never run (run was Some) and is dropped once.
                    unsafe { (hd.drop_closure)(hd.closure) };
                }
                Err(SwitchError::Killed { id: hd.id })
            }
            // Started and not the current one: suspended.
            // SAFETY: as in `switch`: live, distinct, suspended target.
            Life::Started => unsafe { transfer_throw(cur, self.h) },
        }
    }
}

/// The one place that switches: records the running greenlet (for `Greenlet::current` and the
/// overflow handler), picks the switch the return-address predictor expects, switches, and
/// notes how deep the stack was. Returns the message that came back (see [`VALUE`]).
///
/// # Safety
///
/// `cur` must be the running greenlet's header and `to` a different live header that has not
/// finished (not started, or suspended); `arg` must be a message as described at [`VALUE`],
/// which stays valid until the receiver has moved it out.
#[inline(always)]
unsafe fn switch_to(cur: NonNull<Header>, to: NonNull<Header>, arg: usize) -> usize {
    // SAFETY: both headers are live (caller), and only this thread touches them.
    let (c, t) = unsafe { (cur.as_ref(), to.as_ref()) };
    CURRENT.with(|x| x.set(to.as_ptr()));
    let back = if ptr::eq(c.resumer.get(), to.as_ptr()) {
        // Going back to the greenlet whose switch call is waiting for us: `ret` is predicted.
        c.resumer.set(ptr::null());
        // SAFETY: as for the arm below.
        unsafe { arch::switch_return(arg, c.ctx.get(), t.ctx.get()) }
    } else {
        t.resumer.set(cur.as_ptr());
        // SAFETY: `c.ctx` describes the running code (we are `cur`); `t.ctx` is fresh or
        // suspended with its stack alive (the header, which lives on it, is live).
        unsafe { arch::switch(arg, c.ctx.get(), t.ctx.get()) }
    };
    // We run again: whoever switched to us has already made us current.
    // SAFETY: our own context, not being switched now.
    let low = unsafe { (*c.ctx.get()).saved_sp() } as usize;
    if low < c.low_sp.get() {
        c.low_sp.set(low);
    }
    back
}

/// Switches to `to` handing it `v`, and returns what comes back.
///
/// # Safety
///
/// As for [`switch_to`].
#[inline(always)]
unsafe fn transfer_value(
    cur: NonNull<Header>,
    to: NonNull<Header>,
    v: Value,
) -> Result<Value, SwitchError> {
    // The receiver moves the value out before we can run again, so it is not dropped here.
    let v = ManuallyDrop::new(v);
    // SAFETY: forwarded; the message is the address of a `Value` that lives on our stack, in
    // this frame, until we are resumed.
    let back = unsafe { switch_to(cur, to, &*v as *const Value as usize) };
    // SAFETY: `back` is a message on the suspended sender's stack, not yet moved out.
    unsafe { receive(back) }
}

/// Raises [`GreenletExit`] in `to` where it is suspended, and returns what comes back if it
/// ever switches back to us.
///
/// # Safety
///
/// As for [`switch_to`], and `to` must be suspended (started).
#[inline(never)]
unsafe fn transfer_throw(cur: NonNull<Header>, to: NonNull<Header>) -> Result<Value, SwitchError> {
    // SAFETY: forwarded; a throw carries no data.
    let back = unsafe { switch_to(cur, to, THROW) };
    // SAFETY: as in `transfer_value`.
    unsafe { receive(back) }
}

/// Interprets the message a greenlet received as the result of its switch. The common case,
/// a value, is inlined; the rest is out of line.
///
/// # Safety
///
/// `msg` must be a live, not yet consumed message (see [`VALUE`]).
#[inline(always)]
unsafe fn receive(msg: usize) -> Result<Value, SwitchError> {
    if msg & KIND == VALUE {
        // SAFETY: as the caller promises: the address of a `Value`, whose ownership moves to us.
        return Ok(unsafe { ptr::read(msg as *const Value) });
    }
    let mut err = mem::MaybeUninit::uninit();
    // SAFETY: forwarded.
    match unsafe { receive_other(msg, &mut err) } {
        Some(v) => Ok(v),
        // SAFETY: `receive_other` wrote the error when it returned no value.
        None => Err(unsafe { err.assume_init() }),
    }
}

/// A message other than a value: unwind, or take over from a finished greenlet. Returns the
/// value the finished greenlet returned, or writes the error to `err` and returns `None`.
/// (An `Option<Value>` comes back in two registers, a `Result<Value, SwitchError>` through
/// memory: this keeps the common end of a greenlet, a returned value, cheap.)
///
/// # Safety
///
/// `msg` must be a live, not yet consumed `THROW` or `FINISHED` message.
#[inline(never)]
unsafe fn receive_other(msg: usize, err: &mut mem::MaybeUninit<SwitchError>) -> Option<Value> {
    if msg & KIND == THROW {
        throw_here();
    }
    // SAFETY: as the caller promises: the tagged address of a `Finished`, which moves to us.
    let Finished { from, outcome } = unsafe { ptr::read((msg & !KIND) as *const Finished) };
    // (Our unwind slot names our parent, never a child: releasing the sender below cannot
    // leave it pointing into a released stack.)
    // SAFETY: `from` is the finished greenlet's header, still live: it is released only here
    // (or by its last handle, which sees it finished after this).
    let f = unsafe { from.as_ref() };
    let value = match outcome {
        Ok(v) => Some(v),
        Err(payload) => {
            err.write(finish_error(f, payload));
            None
        }
    };
    if f.handles.get() == 0 {
        // SAFETY: finished and unreferenced: nothing can reach it any more. (Nothing of the
        // message, which lived on its stack, is used after this.)
        unsafe { release(from) };
    }
    value
}

/// How a greenlet that did not return ended, as its parent's switch reports it.
#[cold]
fn finish_error(f: &Header, payload: Box<dyn Any + Send>) -> SwitchError {
    if payload.is::<GreenletExit>() {
        SwitchError::Killed { id: f.id }
    } else {
        SwitchError::Panicked(Box::new(Panic {
            id: f.id,
            name: f.name.as_deref().map(String::from),
            message: panic_message(&*payload),
            payload,
        }))
    }
}

#[cold]
fn throw_here() -> ! {
    panic::resume_unwind(Box::new(GreenletExit))
}

/// The text of a panic payload, when it has one.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if payload.is::<GreenletExit>() {
        "killed (GreenletExit)".to_string()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Where every greenlet begins, called by the trampoline on the greenlet's own stack.
///
/// # Safety
///
/// Called only by `grove_trampoline` for a context made in `Builder::build`: `data` is the
/// greenlet's header and `arg` points to the first message.
unsafe extern "C" fn greenlet_entry(arg: usize, data: *mut u8) -> ! {
    let h = data as *mut Header;
    // SAFETY: `data` is this greenlet's header, live while it runs.
    let hd = unsafe { &*h };
    hd.life.set(Life::Started);
    // The first message is a value: a throw into a greenlet that has not started never
    // switches to it, and a finished greenlet hands its outcome only to a started one.
    debug_assert_eq!(
        arg & KIND,
        VALUE,
        "a fresh greenlet is started with a value"
    );
    // SAFETY: `arg` is the first message, a value, owned by us now.
    let v = unsafe { ptr::read(arg as *const Value) };
    let run = hd.run.take().expect("a fresh greenlet has its closure");
    let closure = hd.closure;
    // SAFETY: the closure is moved out exactly once (run was Some until just now).
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| unsafe { run(closure, v) }));
    // Its greenlet-local values go with it (on its own stack, while it is still current).
    hd.locals.clear();
    // Everything the body owned has been dropped. Hand the outcome to the nearest ancestor
    // that is alive, and never come back.
    hd.life.set(Life::Finished);
    let target = live_ancestor(hd);
    // SAFETY: `target` is a live header (a handle in our parent chain keeps it alive; main
    // greenlets never finish) that can be switched to.
    let t = unsafe { target.as_ref() };
    CURRENT.with(|x| x.set(target.as_ptr()));
    let msg = ManuallyDrop::new(Finished {
        // SAFETY: h is not null.
        from: unsafe { NonNull::new_unchecked(h) },
        outcome,
    });
    // SAFETY: the target is live and switchable; our own context receives our final state,
    // which nothing ever resumes (we are finished). The receiver consumes `msg` while our stack
    // is still alive.
    unsafe {
        let arg = &*msg as *const Finished as usize | FINISHED;
        if ptr::eq(hd.resumer.get(), target.as_ptr()) {
            arch::switch_return(arg, hd.ctx.get(), t.ctx.get());
        } else {
            arch::switch(arg, hd.ctx.get(), t.ctx.get());
        }
    }
    // A finished greenlet is never resumed.
    std::process::abort()
}

/// The first greenlet up the parent chain that can take control: started and not finished.
/// A thread's main greenlet always qualifies.
fn live_ancestor(hd: &Header) -> NonNull<Header> {
    let mut cursor = hd.parent_header();
    while let Some(h) = cursor {
        // SAFETY: ancestors are kept alive by the parent handles along the chain.
        let a = unsafe { h.as_ref() };
        // Not the running one (that is us): started means suspended.
        if a.life.get() == Life::Started {
            return h;
        }
        cursor = a.parent_header();
    }
    // No parent chain (a greenlet whose ancestors all finished): the thread's main greenlet.
    MAIN.with(|m| {
        let g = m.0.take();
        let h = g.as_ref().map(|g| g.h);
        m.0.set(g);
        h
    })
    .expect("grove: a greenlet finished after its thread's main greenlet was torn down")
}

/// Frees what a greenlet holds and gives its stack back.
///
/// # Safety
///
/// `h` must be a header with no handles, not running, not suspended (`NotStarted` with the
/// closure already dropped, or `Finished`), or a main header with no handles.
unsafe fn release(h: NonNull<Header>) {
    let raw = h.as_ptr();
    // Drop and take what the header owns: its memory goes back to the pool, or is freed, below.
    // SAFETY: the header is live until this function is done with it, and nobody else can
    // reach it (no handles). `release` runs once per header: these fields are dropped or read
    // out only here, and nothing uses them (or the header) afterwards.
    let (parent, owner, base, top, low) = unsafe {
        // Usually there is no name and there are no locals: nothing to drop, and no call here.
        if (*raw).name.is_some() || !(*raw).locals.owns_nothing() {
            drop_name_and_locals(raw);
        }
        let owner = ptr::read(&*(*raw).stack);
        let parent = (*raw).parent.take();
        (parent, owner, (*raw).base, (*raw).top, (*raw).low_sp.get())
    };
    drop(parent);
    match owner {
        // SAFETY: the parts of the pool's stack that `Builder::build` gave the header, made
        // into a stack again only here (once per header).
        StackOwner::Pooled => pool::give(unsafe { MmapStack::from_raw_parts(base, top) }, low),
        StackOwner::Custom(s) => {
            let CustomStack { stack, valgrind } = *s;
            drop(valgrind);
            drop(stack);
        }
        // SAFETY: main headers are Box allocations (init_main); what they own was dropped or
        // moved out above, so free the memory without dropping fields again.
        StackOwner::Thread => unsafe { drop(Box::from_raw(raw as *mut ManuallyDrop<Header>)) },
    }
}

/// `release`'s drop of a header's name and greenlet-local values, when it has any.
///
/// # Safety
///
/// As for `release`, which calls it once per header at most.
#[cold]
#[inline(never)]
unsafe fn drop_name_and_locals(raw: *mut Header) {
    // SAFETY: as the caller promises: dropped in place once, never used again.
    unsafe {
        ptr::drop_in_place(ptr::addr_of_mut!((*raw).name));
        ptr::drop_in_place(ptr::addr_of_mut!((*raw).locals));
    }
}

impl Clone for Greenlet {
    fn clone(&self) -> Greenlet {
        Greenlet::from_header(self.h)
    }
}

impl PartialEq for Greenlet {
    fn eq(&self, other: &Greenlet) -> bool {
        self.h == other.h
    }
}

impl Eq for Greenlet {}

impl fmt::Debug for Greenlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Greenlet")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("state", &self.state())
            .finish()
    }
}

impl Drop for Greenlet {
    #[inline]
    fn drop(&mut self) {
        let hd = self.header();
        let n = hd.handles.get() - 1;
        hd.handles.set(n);
        if n == 0 {
            if hd.life.get() == Life::Finished {
                // The common end (a greenlet that ran to completion, then its handle goes):
                // nothing to decide. (Main greenlets never finish.)
                // SAFETY: finished, and that was its last handle.
                unsafe { release(self.h) };
            } else {
                self.last_handle_dropped();
            }
        }
    }
}

impl Greenlet {
    /// `drop` of the last handle of a greenlet that has not finished (`drop` releases a
    /// finished one itself): kill a suspended one, release one that never started. Out of
    /// line, so that dropping any other handle is a decrement and a test.
    #[inline(never)]
    fn last_handle_dropped(&mut self) {
        let hd = self.header();
        match self.state() {
            // A running main greenlet without handles: its thread is exiting (the MAIN
            // thread-local gave up its handle). Free it, and forget it as the current one.
            State::Running if hd.top == 0 => {
                let _ = CURRENT.try_with(|c| {
                    if ptr::eq(c.get(), self.h.as_ptr()) {
                        c.set(ptr::null());
                    }
                });
                // SAFETY: a main header with no handles, and no longer current.
                unsafe { release(self.h) };
            }
            // Running: the greenlet dropped its own last handle; released when it finishes.
            State::Running => {}
            State::Suspended if hd.top == 0 => {
                // A main greenlet without handles while another greenlet runs: the thread is
                // exiting from inside a greenlet. Leave it; nothing can switch to it anyway.
            }
            State::Suspended => {
                // Kill it so that its destructors run, with us as the one it returns to.
                hd.handles.set(1);
                let me = Greenlet::current();
                let old = hd.parent.replace(Some(me));
                // Backtraces during its unwind walk into us, not into the old parent, whose
                // last handle may go here.
                self.name_unwind_parent();
                drop(old);
                // SAFETY: live, suspended, not the current greenlet (that one is running).
                let cur = current_header();
                let _ = unsafe { transfer_throw(cur, self.h) };
                let n = hd.handles.get() - 1;
                hd.handles.set(n);
                if hd.life.get() == Life::Finished && n == 0 {
                    // SAFETY: finished, no handles left.
                    unsafe { release(self.h) };
                }
                // Otherwise it caught GreenletExit and lives on elsewhere (or a new handle
                // appeared): it is released when it finishes and its last handle goes.
            }
            State::NotStarted => {
                if hd.run.take().is_some() {
                    // SAFETY: never run, dropped once.
                    unsafe { (hd.drop_closure)(hd.closure) };
                }
                hd.life.set(Life::Finished);
                // SAFETY: not started, closure dropped, no handles.
                unsafe { release(self.h) };
            }
            State::Finished => unreachable!("drop releases a finished greenlet itself"),
        }
    }
}

/// For the overflow handler: whether `addr` lies in the guard region of the running greenlet's
/// stack. Async-signal-safe: reads only the running greenlet's header.
pub(crate) fn guard_hit(addr: usize) -> Option<GuardHit> {
    let cur = CURRENT.try_with(|c| c.get()).ok()?;
    // SAFETY: the running greenlet's header is live while it runs.
    let hd = unsafe { cur.as_ref()? };
    if hd.top == 0 || hd.guard == 0 {
        return None;
    }
    // A fault anywhere in the guard is ours. (Below it is not checked: a big frame could skip
    // past a guard only without stack probes, and Rust always emits them.)
    if addr < hd.base && addr >= hd.base.saturating_sub(hd.guard) {
        let (name, name_len) = match &hd.name {
            Some(n) => (n.as_ptr(), n.len()),
            None => (b"unnamed".as_ptr(), 7),
        };
        Some(GuardHit {
            id: hd.id,
            name,
            name_len,
            stack_kib: (hd.top - hd.base) / 1024,
        })
    } else {
        None
    }
}
