//! Business rules, one given / when / then per rule, and properties over random histories.

mod backorders;
mod changes;
mod digital;
mod fair;
mod kit;
mod lifecycle;
mod locations;
mod physical;
mod print_on_demand;
mod properties;
mod registration;

use proptest::prelude::*;

use crate::event::Event;
use crate::state::SkuState;

/// The end of every random history: the writer's state is what folding its log gives,
/// and what a snapshot of it decodes to, and that snapshot passes validation.
fn folds_and_restores(log: &[Event], state: &SkuState) -> Result<(), TestCaseError> {
    prop_assert_eq!(&SkuState::from_events(log).unwrap(), state);
    let snapshot = rmp_serde::to_vec_named(state).unwrap();
    let restored: SkuState = rmp_serde::from_slice(&snapshot).unwrap();
    prop_assert_eq!(&restored, state);
    prop_assert_eq!(restored.validate(), Ok(()));
    Ok(())
}
