// cl_api.h — the one include of the OpenCL C++ bindings for host/.
//
// Debian 12's CL/opencl.hpp defines detail::getContextPlatformVersion only when
// CL_HPP_MINIMUM_OPENCL_VERSION < 120 but calls it whenever it is < 200 (cl::CommandQueue), so the
// build's minimum of 120 does not compile. 110 selects the same run-time checks and changes nothing
// else for OpenCL 1.2+ devices.
#pragma once

#undef CL_HPP_MINIMUM_OPENCL_VERSION
#define CL_HPP_MINIMUM_OPENCL_VERSION 110
#include <CL/opencl.hpp>
