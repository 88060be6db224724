//! placeholder: see the open issue that builds this crate.
