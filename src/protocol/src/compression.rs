//! placeholder: compression codecs (helper)
