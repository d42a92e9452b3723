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
