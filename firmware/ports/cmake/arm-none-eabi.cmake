# GNU Arm Embedded toolchain (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi); pass it with
# -DCMAKE_TOOLCHAIN_FILE=arm-none-eabi.cmake. The CPU flags are the board's, in CMakeLists.txt (CPU_FLAGS).
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
# CMake's compiler checks would link a test program, which needs the board's start-up code and linker script.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
