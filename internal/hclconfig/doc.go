// Package hclconfig holds what every provtrail HCL file shares: the
// evaluation context with the env() and file() functions, decoding of
// durations ("5s") and sizes ("1GiB") with diagnostics that point at the
// offending attribute, and printing diagnostics as FILE:LINE:COL.
package hclconfig
