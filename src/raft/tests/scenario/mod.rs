//! The scenario runner's parts: the script format (`script.rs`), the in-memory shell and its
//! command language (`cluster.rs`), and the text form of effects (`format.rs`).

pub mod cluster;
pub mod format;
pub mod script;
