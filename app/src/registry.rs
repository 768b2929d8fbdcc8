//! The apps a chain can name, from its [`AppKind`] to the type that runs it.

use crate::{App, KvStore, Transfer};
use tpslab_types::AppKind;

/// Code generic over the app, run for the app a chain names (see [`visit`]).
pub trait AppVisitor {
    /// What the visit returns.
    type Output;
    /// Runs with the chain's app.
    fn visit<A: App>(self, app: A) -> Self::Output;
}

/// Runs `visitor` with the app `kind` names: the one place that maps names to apps.
pub fn visit<V: AppVisitor>(kind: AppKind, visitor: V) -> V::Output {
    match kind {
        AppKind::Transfer => visitor.visit(Transfer),
        AppKind::KvStore => visitor.visit(KvStore),
    }
}

/// Whether `kind`'s txs carry signatures (what CheckTx and execution verify).
pub fn signed(kind: AppKind) -> bool {
    struct Signed;
    impl AppVisitor for Signed {
        type Output = bool;
        fn visit<A: App>(self, _app: A) -> bool {
            A::SIGNED
        }
    }
    visit(kind, Signed)
}
