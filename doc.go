// Package neuroshard holds what the whole project shares: the training corpus shipped with it.
package neuroshard
