//! placeholder: record encoding (helper)
