use tower_layer::Layer;

use super::HopByHop;

/// Applies [`HopByHop`]: put it first in the stack. See the [module docs](crate::hop).
#[derive(Clone, Copy, Debug, Default)]
pub struct HopByHopLayer;

impl HopByHopLayer {
    /// The layer (it has no configuration; `HopByHopLayer` itself is a value too).
    pub fn new() -> Self {
        HopByHopLayer
    }
}

impl<S> Layer<S> for HopByHopLayer {
    type Service = HopByHop<S>;

    fn layer(&self, inner: S) -> HopByHop<S> {
        HopByHop::new(inner)
    }
}
