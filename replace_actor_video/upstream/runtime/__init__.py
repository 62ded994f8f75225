"""Code shared by the launchers of several homes (rife/runtime, realesrgan/runtime) that runs inside the
upstream tool's interpreter: standard library only, loaded from the launcher's path, no import of this
package."""
