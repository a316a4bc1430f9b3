package codec

// AppendStoredFrame exposes appendStoredFrame to the external tests, which
// build stored frames of any size with it (Compress stores only inputs of
// 64 KiB or more).
var AppendStoredFrame = appendStoredFrame
