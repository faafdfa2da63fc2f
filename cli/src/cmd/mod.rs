//! One module per top-level command.

pub(crate) mod inspect;
pub(crate) mod keys;
