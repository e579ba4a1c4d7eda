//! The lrmf command-line tool.
