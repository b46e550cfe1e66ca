//! Typed forwarders: signatures that weft can name as Rust types.
//!
//! wasmtime's dynamic host functions and `Func::call_async` take every value
//! as a `Val`, so a `list<u8>` of 64 KiB becomes 65,536 `Val`s, lifted and
//! lowered twice per call. Where a forwarded function's signature is one of
//! the shapes below, the forwarder is instead a typed host function
//! (`func_wrap_async`) that calls the callee through a `TypedFunc`: bytes
//! and strings are copied as slices, and scalars pass without boxing.
//!
//! wasmtime needs the Rust types at compile time, so the shapes are a fixed
//! table ([`SHAPES`]): every combination of the parameter lists and result
//! lists below. Any other signature keeps the `Val` path, which handles
//! every type.

//! The same shapes cross processes without `Val`s: the forwarder encodes
//! its Rust values straight into the wire format ([`crate::codec::typed`]),
//! and the `Invoke` service decodes them straight into Rust values for a
//! `TypedFunc` of the callee ([`Shape::serve`]). The bytes are those of the
//! `Val` path, so either end may take either path.

use super::Forwarder;
use crate::codec::typed::{Wire, WireList};
use crate::codec::{DecodeError, FuncTypes, ValueType};
use crate::host::HostState;
use crate::pool::InstancePool;
use bytes::Bytes;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::component::{
    ComponentExportIndex, ComponentNamedList, Lift, LinkerInstance, Lower, ResourceAny,
    ResourceDynamic,
};

/// Why a typed remote call could not be served.
pub(crate) enum ServeError {
    /// The arguments do not decode.
    Decode(DecodeError),
    /// The callee failed.
    Call(wasmtime::Error),
}

/// The encoded results of a call served from another process.
pub(crate) type Served<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, ServeError>> + Send + 'a>>;

/// A signature with a typed path, at both ends of a call.
pub(crate) trait Shape: Send + Sync {
    /// Registers `forwarder` as the typed host function `name`.
    fn forward(
        &self,
        instance: &mut LinkerInstance<'_, HostState>,
        name: &str,
        forwarder: Arc<Forwarder>,
    ) -> wasmtime::Result<()>;

    /// Serves one call from another process: decodes `payload`, calls
    /// `export` of an instance of `pool`, and encodes the results.
    fn serve<'a>(
        &'a self,
        pool: &'a InstancePool,
        export: ComponentExportIndex,
        label: &'a str,
        payload: &'a Bytes,
    ) -> Served<'a>;
}

/// The shape whose parameters are `P` and results `R`.
struct Typed<P, R>(PhantomData<fn(P) -> R>);

impl<P, R> Shape for Typed<P, R>
where
    P: ComponentNamedList + Lift + Lower + WireList + Send + Sync + 'static,
    R: ComponentNamedList + Lift + Lower + WireList + Send + Sync + 'static,
{
    fn forward(
        &self,
        instance: &mut LinkerInstance<'_, HostState>,
        name: &str,
        forwarder: Arc<Forwarder>,
    ) -> wasmtime::Result<()> {
        instance.func_wrap_async(name, move |store, params: P| {
            let forwarder = forwarder.clone();
            let deadline = store.data().deadline;
            Box::new(async move { forwarder.call_typed::<P, R>(deadline, params).await })
        })
    }

    fn serve<'a>(
        &'a self,
        pool: &'a InstancePool,
        export: ComponentExportIndex,
        label: &'a str,
        payload: &'a Bytes,
    ) -> Served<'a> {
        Box::pin(async move {
            let params = P::decode(payload).map_err(ServeError::Decode)?;
            let results: R = pool
                .call_typed(export, label, params)
                .await
                .map_err(ServeError::Call)?;
            Ok(results.encode())
        })
    }
}

/// Whether every function takes the `Val` path.
static VAL_PATH_ONLY: AtomicBool = AtomicBool::new(false);

/// Makes every forwarder linked from now on, and every export served from
/// now on, take the `Val` path, so that a benchmark can show what the typed
/// path gains. `WEFT_VAL_PATH=1` sets it for a `weft` process.
pub fn use_val_path_only(on: bool) {
    VAL_PATH_ONLY.store(on, Ordering::Relaxed);
}

/// The typed shape of a function whose types are `types` (the codec's
/// view of them, from the same walk that gives its wire format and its
/// fingerprint), if it has one.
pub(crate) fn shape_of(types: &FuncTypes) -> Option<Arc<dyn Shape>> {
    if VAL_PATH_ONLY.load(Ordering::Relaxed) {
        return None;
    }
    shape_for(&types.params, &types.results)
}

/// A Rust type that stands for one WIT type.
trait Kind: Wire {
    fn matches(ty: &ValueType) -> bool;
}

macro_rules! scalar_kinds {
    ($($rust:ty => $wit:ident),* $(,)?) => {$(
        impl Kind for $rust {
            fn matches(ty: &ValueType) -> bool {
                matches!(ty, ValueType::$wit)
            }
        }
    )*};
}

scalar_kinds!(
    bool => Bool, u8 => U8, u16 => U16, u32 => U32, u64 => U64,
    i8 => S8, i16 => S16, i32 => S32, i64 => S64, f32 => F32, f64 => F64,
    char => Char, String => String,
);

impl Kind for Bytes {
    fn matches(ty: &ValueType) -> bool {
        matches!(ty, ValueType::List(element) if **element == ValueType::U8)
    }
}

/// A tuple of [`Kind`]s: a parameter or result list.
trait Kinds {
    fn matches(types: &[ValueType]) -> bool;
}

impl Kinds for () {
    fn matches(types: &[ValueType]) -> bool {
        types.is_empty()
    }
}

impl<A: Kind> Kinds for (A,) {
    fn matches(types: &[ValueType]) -> bool {
        matches!(types, [a] if A::matches(a))
    }
}

impl<A: Kind, B: Kind> Kinds for (A, B) {
    fn matches(types: &[ValueType]) -> bool {
        matches!(types, [a, b] if A::matches(a) && B::matches(b))
    }
}

impl<A: Kind, B: Kind, C: Kind> Kinds for (A, B, C) {
    fn matches(types: &[ValueType]) -> bool {
        matches!(types, [a, b, c] if A::matches(a) && B::matches(b) && C::matches(c))
    }
}

/// Every result list with a typed path, for one parameter list.
macro_rules! with_results {
    ($params:ty, $results:expr) => {{
        let results: &[ValueType] = $results;
        with_results!(@each $params, results;
            (), (bool,), (u32,), (u64,), (i32,), (i64,), (f64,), (String,), (Bytes,))
    }};
    (@each $params:ty, $results:ident; $($r:ty),*) => {{
        let mut found: Option<Arc<dyn Shape>> = None;
        $(
            if found.is_none() && <$r as Kinds>::matches($results) {
                found = Some(Arc::new(Typed::<$params, $r>(PhantomData)));
            }
        )*
        found
    }};
}

/// Every parameter list with a typed path.
macro_rules! with_params {
    ($params:expr, $results:expr; $($p:ty),* $(,)?) => {{
        let (params, results): (&[ValueType], &[ValueType]) = ($params, $results);
        let mut found: Option<Arc<dyn Shape>> = None;
        $(
            if found.is_none() && <$p as Kinds>::matches(params) {
                found = with_results!($p, results);
            }
        )*
        found
    }};
}

/// The typed shape of a function with `params` and `results`, if it has one.
fn shape_for(params: &[ValueType], results: &[ValueType]) -> Option<Arc<dyn Shape>> {
    with_params!(params, results;
        (),
        (bool,), (u32,), (u64,), (i32,), (i64,), (f64,),
        (u32, u32), (u64, u64), (i32, i32), (i64, i64), (f64, f64),
        (String,), (String, String), (String, u32), (String, u64), (u32, String), (u64, String),
        (Bytes,), (Bytes, u32), (Bytes, u64), (u32, Bytes), (u64, Bytes),
        (String, Bytes),
    )
}

/// How many shapes have a typed path: parameter lists times result lists.
pub const SHAPES: usize = 24 * 9;

/// A method on a borrowed handle whose other parameters and results have a
/// typed path, `(borrow<T>, A) -> R` or `(borrow<T>) -> R`, called in this
/// process: the handle is swapped for the callee's own and the call goes to
/// the pinned instance that keeps it through a `TypedFunc`, with no `Val`.
pub(crate) trait Method: Send + Sync {
    /// Registers `forwarder` as the typed host function `name`.
    fn forward(
        &self,
        instance: &mut LinkerInstance<'_, HostState>,
        name: &str,
        forwarder: Arc<Forwarder>,
        handles: Arc<super::Handles>,
    ) -> wasmtime::Result<()>;
}

/// A parameter list after a method's handle, and the whole list with it:
/// as the caller passes it (its own handle, lifted as its number, with no
/// table entry) and as the callee takes it (the callee's own handle).
pub(crate) trait AfterHandle: Send + Sync + Sized + 'static {
    /// The caller's parameters, its handle first.
    type Mine: ComponentNamedList + Lift + Send + Sync + 'static;
    /// The callee's parameters, its handle first.
    type With: ComponentNamedList + Lift + Lower + Send + Sync + 'static;
    /// The caller's handle and the rest.
    fn split(all: Self::Mine) -> (ResourceDynamic, Self);
    /// The callee's list, with `handle` first.
    fn join(handle: ResourceAny, rest: Self) -> Self::With;
}

impl AfterHandle for () {
    type Mine = (ResourceDynamic,);
    type With = (ResourceAny,);
    fn split((handle,): Self::Mine) -> (ResourceDynamic, Self) {
        (handle, ())
    }
    fn join(handle: ResourceAny, (): Self) -> Self::With {
        (handle,)
    }
}

impl<A> AfterHandle for (A,)
where
    A: wasmtime::component::ComponentType + Lift + Lower + Send + Sync + 'static,
{
    type Mine = (ResourceDynamic, A);
    type With = (ResourceAny, A);
    fn split((handle, a): Self::Mine) -> (ResourceDynamic, Self) {
        (handle, (a,))
    }
    fn join(handle: ResourceAny, (a,): Self) -> Self::With {
        (handle, a)
    }
}

/// The method shape whose other parameters are `P` and results `R`.
struct TypedMethod<P, R>(PhantomData<fn(P) -> R>);

impl<P, R> Method for TypedMethod<P, R>
where
    P: AfterHandle,
    R: ComponentNamedList + Lift + Lower + Send + Sync + 'static,
{
    fn forward(
        &self,
        instance: &mut LinkerInstance<'_, HostState>,
        name: &str,
        forwarder: Arc<Forwarder>,
        handles: Arc<super::Handles>,
    ) -> wasmtime::Result<()> {
        instance.func_wrap_async(name, move |store, all: P::Mine| {
            let forwarder = forwarder.clone();
            let deadline = store.data().deadline;
            let (mine, rest) = P::split(all);
            let found = handles.borrowed_here(&forwarder.callee, &mine);
            Box::new(async move {
                let (owner, theirs) = found?;
                forwarder
                    .call_method::<P::With, R>(owner, deadline, P::join(theirs, rest))
                    .await
            })
        })
    }
}

/// Every result list of a method with a typed path, for one parameter list.
macro_rules! method_results {
    ($params:ty, $results:expr; $($r:ty),*) => {{
        let results: &[ValueType] = $results;
        let mut found: Option<Arc<dyn Method>> = None;
        $(
            if found.is_none() && <$r as Kinds>::matches(results) {
                found = Some(Arc::new(TypedMethod::<$params, $r>(PhantomData)));
            }
        )*
        found
    }};
}

/// Every method shape: a borrowed handle, then none or one typed
/// parameter, and a typed result list.
macro_rules! methods {
    ($rest:expr, $results:expr; $($p:ty),*) => {{
        let (rest, results): (&[ValueType], &[ValueType]) = ($rest, $results);
        let mut found: Option<Arc<dyn Method>> = None;
        $(
            if found.is_none() && <$p as Kinds>::matches(rest) {
                found = method_results!($p, results;
                    (), (bool,), (u32,), (u64,), (i64,), (f64,), (String,), (Bytes,));
            }
        )*
        found
    }};
}

/// The typed method shape of a function whose types are `types`, if it is
/// a method on a borrowed handle with a typed path for the rest.
pub(crate) fn method_of(types: &FuncTypes) -> Option<Arc<dyn Method>> {
    if VAL_PATH_ONLY.load(Ordering::Relaxed) {
        return None;
    }
    let (ValueType::Borrow, rest) = types.params.split_first()? else {
        return None;
    };
    methods!(rest, &types.results;
        (), (bool,), (u32,), (u64,), (i64,), (f64,), (String,), (Bytes,))
}
