//! pelt-data: tasks, tokenisation, samplers and metrics.
//!
//! Tasks are read from their official file layouts (GLUE TSV folders) or from the assets that pelt's
//! set-up installs (Rotten Tomatoes, BBC News). Every reader error names the file and line.

#![warn(missing_docs)]

pub mod conll;
pub mod d2t;
pub mod files;
pub mod glue;
pub mod metrics;
pub mod sampler;
pub mod shipped;
pub mod summarization;
pub mod task;
pub mod textgen;
pub mod tokenize;
pub mod vision;
pub mod vl;

pub use metrics::Metric;
pub use task::{Dataset, Example, Label, LabelSpace};
pub use tokenize::{Encoding, TextTokenizer};

/// Errors reading data; each names the file (and line where there is one).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder that cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// An entry of a JSON or binary file that does not have the official layout.
    #[error("{path}: {entry}: {message}")]
    Entry {
        /// The file.
        path: String,
        /// Which entry (`entry 17`, `question 3`, `image 42`).
        entry: String,
        /// What was expected.
        message: String,
    },
    /// A row that does not have the official layout.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What was expected.
        message: String,
    },
    /// A task name pelt does not know.
    #[error(
        "unknown task `{0}`; known: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli, rotten_tomatoes, bbc_news"
    )]
    UnknownTask(String),
    /// A tokenizer file that cannot be used.
    #[error("{path}: tokenizer: {message}")]
    Tokenizer {
        /// The tokenizer.json path.
        path: String,
        /// What failed.
        message: String,
    },
    /// A sampler request that the data cannot satisfy.
    #[error("{0}")]
    Sampling(String),
    /// A value of a user's data file that cannot be used: the file, where (`line N` of a text file,
    /// `row N` of a Parquet file, 1-based), the column and what was expected.
    #[error("{path}: {at}, column `{column}`: {message}")]
    Field {
        /// The file.
        path: String,
        /// `line N` or `row N`.
        at: String,
        /// The column as the file names it (or its 0-based index without a header).
        column: String,
        /// What was expected.
        message: String,
    },
}

/// Result alias for [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;

pub(crate) fn read_text(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| DataError::Io { path: path.display().to_string(), source })
}
