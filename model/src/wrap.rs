//! A model wrapped in another keeps its properties. stateright's property
//! conditions are `fn` pointers, which cannot capture the inner model's own
//! conditions, so each is reached through a per-index trampoline: a generic
//! `fn` monomorphised once per index, which looks the condition up by index.
//! Used by the explorer ([`crate::explore`]) and the checker's deadline
//! ([`crate::deadline`]).

use stateright::{Model, Property};

/// A model that runs another and answers for its properties.
pub trait Wrapper: Model + Sized {
    type Inner: Model;
    fn inner(&self) -> &Self::Inner;
    /// The inner model's properties, taken once (a trampoline reads them by index).
    fn inner_properties(&self) -> &[Property<Self::Inner>];
    fn inner_state(state: &Self::State) -> &<Self::Inner as Model>::State;
    /// Whether inner property `i` holds in `state`; by default, the inner model's verdict.
    fn holds(&self, i: usize, state: &Self::State) -> bool {
        (self.inner_properties()[i].condition)(self.inner(), Self::inner_state(state))
    }
}

/// The most properties a wrapped model may have (one trampoline each).
pub const MAX_PROPERTIES: usize = 16;

fn holds<W: Wrapper, const I: usize>(w: &W, state: &W::State) -> bool {
    w.holds(I, state)
}

type Condition<W> = fn(&W, &<W as Model>::State) -> bool;

fn trampoline<W: Wrapper>(i: usize) -> Condition<W> {
    let all: [Condition<W>; MAX_PROPERTIES] = [
        holds::<W, 0>,
        holds::<W, 1>,
        holds::<W, 2>,
        holds::<W, 3>,
        holds::<W, 4>,
        holds::<W, 5>,
        holds::<W, 6>,
        holds::<W, 7>,
        holds::<W, 8>,
        holds::<W, 9>,
        holds::<W, 10>,
        holds::<W, 11>,
        holds::<W, 12>,
        holds::<W, 13>,
        holds::<W, 14>,
        holds::<W, 15>,
    ];
    all[i]
}

/// The inner model's properties, as the wrapper's: same names and expectations.
pub fn properties<W: Wrapper>(w: &W) -> Vec<Property<W>> {
    w.inner_properties()
        .iter()
        .enumerate()
        .map(|(i, p)| Property {
            expectation: p.expectation.clone(),
            name: p.name,
            condition: trampoline::<W>(i),
        })
        .collect()
}

/// The inner model's properties, checked to fit the trampolines.
pub fn take_properties<M: Model>(model: &M) -> Vec<Property<M>> {
    let properties = model.properties();
    assert!(
        properties.len() <= MAX_PROPERTIES,
        "a wrapper carries at most {MAX_PROPERTIES} properties, this model has {}",
        properties.len()
    );
    properties
}
