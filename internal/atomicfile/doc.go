// Package atomicfile writes files so that a crash leaves either the old or the new content.
package atomicfile
