//! The built-in TOP gateway simulator (`campaign sim`, `url = "sim"`).

/// `campaign sim` options.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SimArgs {}
